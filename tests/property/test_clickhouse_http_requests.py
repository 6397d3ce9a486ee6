"""clickhouse_http.parse_request on arbitrary requests: an answer or a ClickHouse error, nothing else."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import given
from hypothesis import strategies as st

from sinks.clickhouse_http import ENGINE_SETTINGS, TRANSPORT_PARAMETERS, ClickHouseHttpError, parse_request

_NAMES = st.sampled_from(sorted(ENGINE_SETTINGS | TRANSPORT_PARAMETERS | {"param_x", "readonly"})) | st.text(
    max_size=12
)
_HEADERS = st.lists(
    st.tuples(
        st.sampled_from(["Authorization", "X-ClickHouse-User", "X-ClickHouse-Key", "X-Other"]),
        st.text(max_size=30),
    ),
    max_size=4,
)


@given(st.text(max_size=200), _HEADERS, st.binary(max_size=200))
def test_any_request_parses_or_fails_as_clickhouse_would(
    url: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    try:
        query = parse_request(url, headers, body)
    except ClickHouseHttpError as error:
        failure = error
    else:
        assert query.text.strip()
        assert set(query.settings) <= ENGINE_SETTINGS
        return
    assert failure.code in (48, 62, 164, 516)
    assert failure.body().startswith(b"Code: ")


@given(st.dictionaries(_NAMES, st.text(max_size=20), max_size=6), st.text(min_size=1, max_size=50))
def test_only_allowed_settings_ever_reach_the_engine(fields: dict[str, str], text: str) -> None:
    try:
        query = parse_request(urlencode({**fields, "query": text + "x"}), [], b"")
    except ClickHouseHttpError as error:
        refused_with = error.code
    else:
        assert set(query.settings) <= ENGINE_SETTINGS
        assert all(f"param_{name}" in fields for name in query.parameters)
        return
    assert refused_with in (48, 164, 516)
