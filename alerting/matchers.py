"""Label matchers in Alertmanager's syntax: ``name=value``, ``!=``, ``=~``, ``!~``.

Regular expressions are anchored (they must match the whole value), and a missing
label matches as the empty string, both as in Alertmanager, so configurations
read the same in either tool. Values may be quoted (``model="fraud-v3"``) to hold
spaces, commas or operators.

>>> m = parse_matcher('model=~"fraud-.*"')
>>> m.matches({"model": "fraud-v3"}), m.matches({"model": "credit-v2"})
(True, False)
>>> str(parse_matcher("severity!=info"))
'severity!="info"'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Operator = Literal["=", "!=", "=~", "!~"]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYNTAX = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


class MatcherError(ValueError):
    """A matcher that cannot be parsed; the message quotes it and says why."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Operator
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise MatcherError(f"{self.name!r} is not a label name (letters, digits, _)")
        if self.op in ("=~", "!~"):
            try:
                compiled = re.compile(self.value)
            except re.error as error:
                raise MatcherError(f"{self}: invalid regular expression: {error}") from None
            object.__setattr__(self, "_regex", compiled)

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(value) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value, ensure_ascii=False)}"


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher; raise :class:`MatcherError` with the reason."""
    found = _SYNTAX.match(text)
    if found is None:
        raise MatcherError(
            f"{text!r} is not a matcher: expected name=value, name!=value, name=~regex or name!~regex"
        )
    name, op, raw = found.groups()
    return Matcher(name, op, _unquote(raw, text))  # type: ignore[arg-type]


def _unquote(raw: str, text: str) -> str:
    if not raw.startswith('"'):
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise MatcherError(f"{text!r}: unterminated or malformed quoted value") from None
    if not isinstance(value, str):
        raise MatcherError(f"{text!r}: the quoted value must be a string")
    return value


def parse_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    return tuple(parse_matcher(t) for t in texts)


def match_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
