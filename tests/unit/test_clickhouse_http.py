"""What a ClickHouse HTTP request asks for, and how a failure is answered (sinks.clickhouse_http)."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest

from sinks.clickhouse_http import (
    DEFAULT_FORMAT,
    ClickHouseHttpError,
    Credentials,
    content_type,
    parse_request,
)


def _basic(user: str, password: str) -> tuple[str, str]:
    return ("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())


def test_the_query_comes_from_the_url_or_the_body_and_the_body_follows_the_url() -> None:
    assert parse_request(urlencode({"query": "SELECT 1"}), [], b"").text == "SELECT 1"
    assert parse_request("", [], b"SELECT 2").text == "SELECT 2"
    assert parse_request(urlencode({"query": "SELECT"}), [], b"3").text == "SELECT\n3"


def test_an_empty_query_is_a_syntax_error() -> None:
    with pytest.raises(ClickHouseHttpError) as empty:
        parse_request("", [], b"  \n")
    assert (empty.value.code, empty.value.status) == (62, 400)


def test_parameters_keep_their_text_form_and_settings_are_sorted_out() -> None:
    query = parse_request(
        urlencode(
            {
                "query": "SELECT {s:String}",
                "param_s": "it's\\t",
                "max_result_rows": "5",
                "session_id": "abc",
                "wait_end_of_query": "1",
                "query_id": "q-1",
            }
        ),
        [],
        b"",
    )
    assert query.parameters == {"s": "it's\\t"}
    assert query.settings == {"max_result_rows": "5"}
    assert query.query_id == "q-1"


@pytest.mark.parametrize(
    "setting", ["readonly", "allow_ddl", "output_format_schema", "max_threads", "param_"]
)
def test_a_setting_that_could_lift_a_limit_is_refused_not_ignored(setting: str) -> None:
    with pytest.raises(ClickHouseHttpError) as refused:
        parse_request(urlencode({"query": "SELECT 1", setting: "0"}), [], b"")
    assert (refused.value.code, refused.value.status) == (164, 403)
    assert f"'{setting}'" in refused.value.message


def test_the_format_is_the_default_unless_the_request_names_one() -> None:
    assert parse_request("query=SELECT+1", [], b"").default_format == DEFAULT_FORMAT
    assert parse_request("query=SELECT+1&default_format=JSON", [], b"").default_format == "JSON"
    assert parse_request("query=SELECT+1", [("x-clickhouse-format", "CSV")], b"").default_format == "CSV"


@pytest.mark.parametrize(
    ("url", "headers", "expected"),
    [
        ("", [("X-ClickHouse-User", "vigil"), ("X-ClickHouse-Key", "pw")], Credentials("vigil", "pw")),
        ("", [("x-clickhouse-user", "vigil"), ("x-clickhouse-key", "pw")], Credentials("vigil", "pw")),
        ("", [_basic("vigil", "p:w")], Credentials("vigil", "p:w")),
        ("user=vigil&password=pw", [], Credentials("vigil", "pw")),
        ("", [], Credentials("default", "")),
    ],
)
def test_credentials_come_by_any_of_clickhouses_three_ways(
    url: str, headers: list[tuple[str, str]], expected: Credentials
) -> None:
    assert parse_request(f"{url}&query=SELECT+1", headers, b"").credentials == expected


@pytest.mark.parametrize(
    "authorization", ["Basic !!!", "Bearer abc", "Basic " + base64.b64encode(b"\xff").decode()]
)
def test_other_authorizations_fail_authentication(authorization: str) -> None:
    with pytest.raises(ClickHouseHttpError) as refused:
        parse_request("query=SELECT+1", [("Authorization", authorization)], b"")
    assert (refused.value.code, refused.value.status) == (516, 401)


def test_a_password_never_shows_in_the_credentials_repr() -> None:
    assert "secret" not in repr(Credentials("vigil", "secret"))


def test_engine_errors_keep_their_code_and_get_clickhouses_status() -> None:
    unknown = ClickHouseHttpError.from_engine("Code: 60. DB::Exception: Unknown table x. (UNKNOWN_TABLE)", 62)
    assert (unknown.code, unknown.status) == (60, 404)
    assert unknown.body() == b"Code: 60. DB::Exception: Unknown table x. (UNKNOWN_TABLE)\n"
    plain = ClickHouseHttpError.from_engine("something odd", 62)
    assert (plain.code, plain.status) == (62, 400)
    assert plain.body() == b"Code: 62. DB::Exception: something odd\n"
    assert ClickHouseHttpError(999, "x").status == 500


def test_content_types_follow_the_format() -> None:
    assert content_type("JSONEachRow").startswith("application/x-ndjson")
    assert content_type("JSONCompact").startswith("application/json")
    assert content_type("TabSeparatedWithNames").startswith("text/tab-separated-values")
    assert content_type("CSVWithNames").startswith("text/csv")
    assert content_type("Native") == "application/octet-stream"
    assert content_type("RowBinary") == "application/octet-stream"


@pytest.mark.parametrize(
    ("url", "headers"),
    [("compress=1", []), ("decompress=1", []), ("", [("Content-Encoding", "gzip")])],
)
def test_compressed_exchanges_are_refused_not_misread(url: str, headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ClickHouseHttpError) as refused:
        parse_request(f"{url}&query=SELECT+1", headers, b"")
    assert (refused.value.code, refused.value.status) == (48, 501)


def test_an_offer_to_accept_compression_is_fine() -> None:
    query = parse_request("query=SELECT+1&enable_http_compression=1", [("Accept-Encoding", "gzip, lz4")], b"")
    assert query.text == "SELECT 1"
