"""alerting.matchers: Alertmanager matcher syntax, including property tests of the parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.matchers import Matcher, MatcherError, parse_matcher

LABELS = {"model": "fraud-v3", "stage": "detector", "severity": "high"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model=fraud-v3", True),
        ("model = fraud-v3", True),
        ('model="fraud-v3"', True),
        ("model!=fraud-v3", False),
        ("model=~fraud-.*", True),
        ('severity=~"high|critical"', True),
        ("model=~fraud", False),  # anchored: the whole value must match
        ("model!~credit-.*", True),
        ("principal=", True),  # a missing label is the empty string
        ("principal!=", False),
        ("principal=bob", False),
    ],
)
def test_matching(text: str, expected: bool) -> None:
    assert parse_matcher(text).matches(LABELS) is expected


def test_quoted_values_hold_operators_spaces_and_commas() -> None:
    matcher = parse_matcher('reason="a=b, c!~d"')
    assert matcher.value == "a=b, c!~d"
    assert matcher.matches({"reason": "a=b, c!~d"})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("model", "not a matcher"),
        ("=fraud", "not a matcher"),
        ("9model=x", "not a matcher"),
        ("model=~(unclosed", "invalid regular expression"),
        ('model="unterminated', "malformed quoted value"),
        ('model="1" 2', "malformed quoted value"),
    ],
)
def test_bad_matchers_say_why(text: str, reason: str) -> None:
    with pytest.raises(MatcherError, match=reason):
        parse_matcher(text)


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
operators = st.sampled_from(["=", "!=", "=~", "!~"])
plain_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(names, st.sampled_from(["=", "!="]), plain_values)
def test_rendering_parses_back_to_the_same_matcher(name: str, op: str, value: str) -> None:
    matcher = Matcher(name, op, value)  # type: ignore[arg-type]
    assert parse_matcher(str(matcher)) == matcher


@given(st.text(max_size=60))
def test_any_text_parses_or_fails_with_a_matcher_error(text: str) -> None:
    try:
        matcher = parse_matcher(text)
    except MatcherError:
        return  # a clear refusal is a valid outcome; any other exception fails the test
    assert matcher.matches({}) in (True, False)


@given(names, plain_values, plain_values)
def test_equality_and_inequality_are_complements(name: str, value: str, actual: str) -> None:
    labels = {name: actual}
    assert Matcher(name, "=", value).matches(labels) != Matcher(name, "!=", value).matches(labels)
