"""Every detector by the name configuration files use for it.

One registry feeds the YAML configuration (``detector: normal-scores-cusum``), the
benchmark and the contract tests, so a detector that is not registered cannot be
configured and cannot escape the contract battery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from detectors.base import Detector

D = TypeVar("D", bound=type[Detector])

REGISTRY: dict[str, type[Detector]] = {}


def register(name: str) -> Callable[[D], D]:
    """Class decorator: make a detector configurable as ``name``."""

    def add(cls: D) -> D:
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"detector name {name!r} is already taken by {REGISTRY[name].__name__}")
        REGISTRY[name] = cls
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return add


def create(name: str, params: dict[str, Any] | None = None) -> Detector:
    """Instantiate a registered detector; unknown names and parameters fail clearly."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown detector {name!r}; registered: {known}") from None
    try:
        return cls(**(params or {}))
    except TypeError as error:
        raise ValueError(f"detector {name!r}: {error}") from None
