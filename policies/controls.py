"""The control catalog: frameworks and the controls policies and detectors map to."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

CATALOG_FILE = Path(__file__).resolve().parent / "controls.yaml"


@dataclass(frozen=True)
class ControlCatalog:
    frameworks: dict[str, str]
    """Framework id -> title."""
    controls: dict[str, str]
    """``framework:control`` -> the control's text."""

    def of(self, framework: str) -> dict[str, str]:
        prefix = f"{framework}:"
        return {k: v for k, v in self.controls.items() if k.startswith(prefix)}


@cache
def load_catalog(path: Path = CATALOG_FILE) -> ControlCatalog:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))["frameworks"]
    frameworks = {name: body["title"] for name, body in raw.items()}
    controls = {
        f"{name}:{control}": str(text)
        for name, body in raw.items()
        for control, text in body["controls"].items()
    }
    return ControlCatalog(frameworks, controls)
