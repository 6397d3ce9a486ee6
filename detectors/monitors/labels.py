"""One spelling for labels, so 1, True, "1" and "true" compare equal."""

from __future__ import annotations

_TRUE = {"true": "1", "false": "0", "yes": "yes", "no": "no"}


def label_key(value: object) -> str:
    """Canonical text of a label: booleans and integral numbers as integers.

    >>> [label_key(v) for v in (True, 1, 1.0, "1", " True ", "fraud")]
    ['1', '1', '1', '1', '1', 'fraud']
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip().lower()
    return _TRUE.get(text, text)


def as_binary(value: object) -> int | None:
    """1 or 0 for labels that read as binary, else None."""
    key = label_key(value)
    return 1 if key == "1" else 0 if key == "0" else None
