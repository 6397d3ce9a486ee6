"""Every detector by the name configuration files use for it.

One registry feeds the YAML configuration (``detector: normal-scores-cusum``), the
benchmark and the contract tests, so a detector that is not registered cannot be
configured and cannot escape the contract battery.
"""

from __future__ import annotations

from typing import Any

from detectors.base import Detector

REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> None:
    """Make a detector configurable by its ``registry_name``.

    A call after the class, not a class decorator: a decorated class cannot be
    compiled to a native class (``setup.py``).
    """
    name = cls.registry_name
    if name in REGISTRY and REGISTRY[name] is not cls:
        raise ValueError(f"detector name {name!r} is already taken by {REGISTRY[name].__name__}")
    REGISTRY[name] = cls


def create(name: str, params: dict[str, Any] | None = None) -> Detector:
    """Instantiate a registered detector; unknown names and parameters fail clearly."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown detector {name!r}; registered: {known}") from None
    params = params or {}
    unknown = ", ".join(repr(p) for p in sorted(set(params) - set(cls.PARAMS)))
    if unknown:  # said here, not left to Python, whose words differ for a compiled class
        raise ValueError(
            f"detector {name!r}: unexpected keyword argument {unknown}; it takes {', '.join(cls.PARAMS)}"
        )
    try:
        return cls(**params)
    except TypeError as error:
        raise ValueError(f"detector {name!r}: {error}") from None
