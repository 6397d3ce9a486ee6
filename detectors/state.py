"""Detector state as plain data: a versioned format per detector class, no pickles.

Why not pickle the objects: a pickle names classes and their internals, so it breaks
when a class (or river) changes, and loading one runs code. Instead every detector
class declares what its state is:

- ``STATE_VERSION``: bumped whenever the meaning or the list of its state changes;
  a record of another version is refused (the key then warms up again) rather than
  misread, unless the class lists that version in ``STATE_UPGRADES``: then its fields
  are restored as saved and ``_upgrade_state`` brings them to the current meaning (an
  upgrade of Vigil then keeps the baselines it can).
- ``STATE_FIELDS``: the attributes that make up its state, in a fixed order. They
  are read after ``__init__`` with the record's parameters has built a fresh
  detector, and overwrite its fresh values; the evidence of the last detection is
  not part of it (it is read right after the value that detected, never later).
  ``None``: the class cannot be saved (it wraps state of another library); its keys
  start with a warm-up after a restore.

A detector record (``record``: read quickly on the pipeline thread, arrays converted by
``dumps`` on the thread that encodes) is ``[name, version, params, values]``: the registry name, the
class's ``STATE_VERSION``, the ``__init__`` arguments that differ from the class's
defaults (so a default detector spends no bytes on them) and one value per field.
Values are JSON: numbers, strings, booleans, null and lists as themselves; a
non-finite float as ``{"$f": "nan" | "inf" | "-inf"}``; an ``array.array`` as
``{"$a": typecode, "b": base64 of its machine bytes (little-endian)}``; a dict (and
a ``Counter``) as ``{"$m": [[key, value], ...]}``; deques, sets and tuples as lists
(the fresh attribute's type, and a deque's length limit, come back from
``__init__``). ``docs/detectors.md`` lists each class's fields.
"""

from __future__ import annotations

import base64
import math
import operator
import sys
from array import array
from collections import Counter, deque
from typing import Any, TypeVar

import orjson

from detectors.base import Detector
from detectors.registry import REGISTRY

_BIG_ENDIAN = sys.byteorder == "big"
D = TypeVar("D", bound=Detector)


class StateError(ValueError):
    """A state record that cannot be restored (unknown class, other version, malformed)."""


def plain(value: Any) -> Any:
    """``value`` as JSON-ready plain data (see the module docstring)."""
    kind = value.__class__
    if kind is float:
        if value - value == 0.0:
            return value
        return {"$f": "nan" if value != value else ("inf" if value > 0 else "-inf")}
    if kind is int or kind is str or kind is bool or value is None:
        return value
    if kind is array:
        if _BIG_ENDIAN:
            value = array(value.typecode, value)
            value.byteswap()
        return {"$a": value.typecode, "b": base64.b64encode(value.tobytes()).decode()}
    if isinstance(value, dict):
        return {"$m": [[plain(k), plain(v)] for k, v in value.items()]}
    if isinstance(value, list | tuple | deque):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return [plain(v) for v in sorted(value)]
    raise TypeError(f"{kind.__name__} is not part of the detector state format")


def unplain(data: Any, like: Any = None) -> Any:
    """The value ``plain`` made ``data`` from, as the type of ``like`` (the fresh attribute)."""
    if isinstance(data, dict):
        if "$f" in data:
            return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[data["$f"]]
        if "$a" in data:
            restored = array(data["$a"], base64.b64decode(data["b"]))
            if _BIG_ENDIAN:
                restored.byteswap()
            return restored
        pairs = {unplain(k): unplain(v) for k, v in data["$m"]}
        return Counter(pairs) if isinstance(like, Counter) else pairs
    if isinstance(data, list):
        items = [unplain(v) for v in data]
        if isinstance(like, deque):
            return deque(items, maxlen=like.maxlen)
        if isinstance(like, tuple):
            return tuple(items)
        if isinstance(like, set):
            return set(items)
        return items
    return data


_ATOMIC = frozenset((int, bool, str, type(None)))


class _Reader:
    """How to read one class's state quickly: its parameters and fields in one C call each."""

    __slots__ = ("defaults", "fields", "names", "params")

    def __init__(self, cls: type[Detector]) -> None:
        self.names = cls.PARAMS
        self.params = operator.attrgetter(*self.names) if self.names else (lambda detector: ())
        defaults = self.params(cls())  # every parameter has a default (the contract tests)
        self.defaults = (defaults,) if len(self.names) == 1 else defaults
        assert cls.STATE_FIELDS is not None, f"{cls.__name__} has no state format"
        fields = cls.STATE_FIELDS
        self.fields = (
            operator.attrgetter(*fields) if len(fields) > 1 else (lambda d: (getattr(d, fields[0]),))
        )


_READERS: dict[type[Detector], _Reader] = {}


def savable(detector: Detector) -> bool:
    return type(detector).STATE_FIELDS is not None


def record(detector: Detector) -> tuple[str, int, dict[str, Any], tuple[Any, ...]]:
    """The detector's state record (``savable(detector)`` must hold), read on the pipeline
    thread: quick, and made of tuples, numbers and array copies, which the garbage collector
    soon stops tracking (a snapshot reads thousands). Arrays are converted by ``dumps``, on the
    thread that encodes."""
    cls = type(detector)
    reader = _READERS.get(cls)
    if reader is None:
        reader = _READERS[cls] = _Reader(cls)
    params = reader.params(detector)
    if len(reader.names) == 1:
        params = (params,)
    changed = {}
    if params != reader.defaults:
        changed = {n: v for n, v, d in zip(reader.names, params, reader.defaults, strict=True) if v != d}
    values = []
    atomic = _ATOMIC
    for value in reader.fields(detector):
        kind = value.__class__
        if kind is float:
            values.append(value if value - value == 0.0 else plain(value))
        elif kind is array:
            values.append(value[:])
        elif kind in atomic:
            values.append(value)
        else:
            values.append(plain(value))
    return (cls.registry_name, cls.STATE_VERSION, changed, tuple(values))


def _encode_default(value: Any) -> Any:
    if isinstance(value, array):
        return plain(value)
    raise TypeError(f"{type(value).__name__} is not part of the detector state format")


def dumps(data: Any) -> bytes:
    """JSON of state built of plain values, tuples, arrays and datetimes (RFC 3339)."""
    return orjson.dumps(data, default=_encode_default)


def restore_as(data: Any, kind: type[D]) -> D:
    """``restore``, refusing a record of a detector that is not a ``kind``."""
    detector = restore(data)
    if not isinstance(detector, kind):
        raise StateError(f"a {type(detector).__name__} where a {kind.__name__} was saved")
    return detector


def restore(data: Any) -> Detector:
    """The detector a record describes, or ``StateError`` saying why it cannot be."""
    try:
        name, version, params, values = data
    except (TypeError, ValueError):
        raise StateError("a detector record is [name, version, params, values]") from None
    cls = REGISTRY.get(name)
    if cls is None:
        raise StateError(f"unknown detector {name!r} in the saved state")
    if cls.STATE_FIELDS is None:
        raise StateError(f"{name} state is not saved")
    if version != cls.STATE_VERSION and version not in cls.STATE_UPGRADES:
        readable = ", ".join(str(v) for v in sorted({cls.STATE_VERSION, *cls.STATE_UPGRADES}))
        raise StateError(f"{name} state of version {version}; this version reads {readable}")
    if not isinstance(values, list) or len(values) != len(cls.STATE_FIELDS):
        raise StateError(f"{name} state has {len(values)} values, its format {len(cls.STATE_FIELDS)}")
    try:
        detector = cls(**params)
        for field, value in zip(cls.STATE_FIELDS, values, strict=True):
            setattr(detector, field, unplain(value, getattr(detector, field)))
        if version != cls.STATE_VERSION:
            detector._upgrade_state(version)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise StateError(f"{name} state does not restore: {type(error).__name__}: {error}") from None
    return detector
