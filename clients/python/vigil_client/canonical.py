"""Vigil's canonical form with the standard library alone, byte for byte.

Vigil computes the bytes a signature covers by parsing the message and serializing it
again (docs/events.md, "Canonical form"): keys sorted by code point at every level, no
whitespace, UTF-8 without ASCII escaping, and numbers as Vigil's parser reads them. The
standard library's ``json.dumps`` agrees except for floats (``1e-05`` where Vigil writes
``0.00001``, ``1e+16`` in both but ``1e-06`` against ``1e-6``), so this module writes
floats itself. The message is written by the same code as the canonical form, so what is
sent reads back as exactly the values that were signed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring
from typing import Any

INT_MIN = -(2**63)
UINT_MAX = 2**64 - 1
"""Vigil reads integer literals in this range as integers; outside it, as floats."""


class CanonicalFormError(ValueError):
    """The document holds a value whose signature Vigil could not reproduce."""


def canonical_bytes(document: Mapping[str, Any]) -> bytes:
    """The bytes a signature over ``document`` covers: everything but ``signature``."""
    unsigned = {key: value for key, value in document.items() if key != "signature"}
    return encode(unsigned)


def parse(message: str | bytes) -> Any:
    """A JSON message read as Vigil reads it, for signing JSON text written elsewhere.

    Integer literals outside -2^63 ... 2^64-1 become floats and ``NaN``/``Infinity`` are
    refused, as in Vigil's parser; a lone surrogate escape surfaces when the result is
    encoded.
    """
    # Decoded here, strictly: json.loads would accept bytes with a byte order mark.
    text = message.decode("utf-8") if isinstance(message, bytes | bytearray) else message
    return json.loads(text, parse_int=_parse_int, parse_constant=_refuse_constant)


def _parse_int(literal: str) -> int | float:
    value = int(literal)
    if INT_MIN <= value <= UINT_MAX:
        return value
    try:
        return float(value)
    except OverflowError:
        raise CanonicalFormError(f"number {literal[:20]}... is not a finite 64-bit float") from None


def _refuse_constant(literal: str) -> Any:
    raise CanonicalFormError(f"{literal} is not JSON")


def encode(value: Any) -> bytes:
    """Compact JSON in canonical form, for the message itself as well as for signing."""
    parts: list[str] = []
    _write(value, parts, "$")
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        # Only a lone surrogate (U+D800..U+DFFF) cannot be UTF-8; Vigil rejects it as invalid JSON.
        raise CanonicalFormError(
            f"lone surrogate U+{ord(text[error.start]):04X} in a string: not valid Unicode"
        ) from None


def format_float(value: float) -> str:
    """A float as Vigil writes it: shortest round-trip digits, always a fraction or exponent.

    Plain notation while the decimal point falls within the first 16 digit positions and
    no more than four zeros follow it (``0.00001``, ``1000000000000000.0``), exponent
    notation otherwise (``1e+16``, ``1e-6``, ``1.5e-7``).
    """
    if not math.isfinite(value):
        raise CanonicalFormError(f"{value!r} is not a finite number")
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    digits, point = _shortest_digits(abs(value))
    count = len(digits)
    if count <= point <= 16:
        return f"{sign}{digits}{'0' * (point - count)}.0"
    if 0 < point <= 16:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -5 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    exponent = point - 1
    mantissa = digits if count == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


def _shortest_digits(value: float) -> tuple[str, int]:
    """Significant digits of ``repr`` (the shortest that round-trip) and the point's position.

    ``value == 0.DIGITS * 10**point``: 0.00123 gives ("123", -2), 1500.0 gives ("15", 4).
    """
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0"), point


def _write(value: Any, out: list[str], path: str) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(encode_basestring(value))
    elif isinstance(value, int):
        if not INT_MIN <= value <= UINT_MAX:
            raise CanonicalFormError(
                f"{path}: integer {value} is beyond 64 bits; Vigil would read it as a float and the"
                " signature could not verify"
            )
        out.append(str(int(value)))
    elif isinstance(value, float):
        try:
            out.append(format_float(value))
        except CanonicalFormError as error:
            raise CanonicalFormError(f"{path}: {error}") from None
    elif isinstance(value, Mapping):
        _write_object(value, out, path)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out, f"{path}[{index}]")
        out.append("]")
    else:
        raise CanonicalFormError(f"{path}: {type(value).__name__} is not a JSON value")


def _write_object(value: Mapping[Any, Any], out: list[str], path: str) -> None:
    for key in value:
        if not isinstance(key, str):
            raise CanonicalFormError(f"{path}: key {key!r} is not a string")
    out.append("{")
    # Python orders str by code point, as Vigil does (UTF-16 order would differ beyond U+FFFF).
    for index, key in enumerate(sorted(value)):
        if index:
            out.append(",")
        out.append(encode_basestring(key))
        out.append(":")
        _write(value[key], out, f"{path}.{key}")
    out.append("}")
