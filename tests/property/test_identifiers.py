"""schemas.identifiers on arbitrary text: never raises, and what it accepts is what it promises."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from schemas.identifiers import identifier_problem, resembles


@given(st.text(), st.booleans())
def test_any_text_gets_an_answer_and_accepted_ids_keep_the_promise(text: str, resource: bool) -> None:
    problem = identifier_problem(text, resource)
    if problem:
        return
    assert text
    assert unicodedata.normalize("NFKC", text) == text
    assert not any(c.isspace() for c in text)
    if resource:
        assert text.isascii()
        assert text == text.lower()


@given(st.text())
def test_a_canonical_resource_id_resembles_itself(text: str) -> None:
    if not identifier_problem(text, resource=True):
        assert resembles(text) == text


@given(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,30}", fullmatch=True))
def test_registry_style_ids_are_canonical(identifier: str) -> None:
    assert identifier_problem(identifier, resource=True) == ""


@given(
    st.from_regex(r"[a-z0-9][a-z0-9._-]{0,30}", fullmatch=True), st.sampled_from([" ", "\u00a0", "\u200b"])
)
def test_spacing_variants_of_a_canonical_id_are_not(identifier: str, space: str) -> None:
    assert identifier_problem(identifier + space, resource=True)
    assert identifier_problem(space + identifier, resource=False)


@given(st.text(alphabet=st.characters(max_codepoint=127)), st.booleans())
def test_an_ascii_id_is_canonical_exactly_when_every_character_is_visible(text: str, resource: bool) -> None:
    visible = bool(text) and all("!" <= c <= "~" for c in text)
    expected = visible and (not resource or text == text.lower())
    assert (identifier_problem(text, resource) == "") is expected
