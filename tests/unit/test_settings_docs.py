"""docs/configuration.md and the settings model name the same settings, both ways."""

from __future__ import annotations

import re
from pathlib import Path

from vigil.settings import NOT_SETTINGS, Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
ROW = re.compile(r"^\| `([a-z_.]+)` \| `(VIGIL_[A-Z_]+)` \|", re.MULTILINE)


def documented() -> dict[str, str]:
    """Environment variable -> setting, from the rows of the settings tables."""
    return {variable: setting for setting, variable in ROW.findall(DOCS.read_text(encoding="utf-8"))}


def test_every_setting_is_documented() -> None:
    missing = sorted(set(Settings.variables()) - set(documented()))
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_every_documented_setting_exists() -> None:
    invented = sorted(set(documented()) - set(Settings.variables()))
    assert not invented, f"docs/configuration.md documents settings the model does not have: {invented}"


def test_each_row_pairs_the_setting_with_its_variable() -> None:
    assert documented() == Settings.variables()


def test_variables_read_elsewhere_are_documented_as_not_settings() -> None:
    text = DOCS.read_text(encoding="utf-8")
    not_settings = text[text.index("### Not a setting") :]
    assert all(f"`{name}`" in not_settings for name in NOT_SETTINGS)
