"""streams.notifier.decode_alert on arbitrary records: an alert row or an AlertDecodeError, nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
from hypothesis import given
from hypothesis import strategies as st

from schemas import SEVERITIES
from schemas.records import AlertRow
from streams.notifier import AlertDecodeError, decode_alert

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
rows = st.builds(
    AlertRow,
    alert_id=st.text(),
    ts=times,
    fired_at=times,
    fingerprint=st.text(),
    severity=st.sampled_from(SEVERITIES),
    title=st.text(),
    summary=st.text(),
    stage=st.text(),
    detector_or_rule=st.text(),
    model_id=st.text(),
    principal_id=st.text(),
    event_id=st.text(),
    occurrences=st.integers(min_value=1, max_value=2**40),
    resource_kind=st.text(),
    resource_id=st.text(),
    key_id=st.text(),
)


def _outcome(value: bytes) -> AlertRow | str:
    """The row, or the reason given for refusing it (never empty)."""
    try:
        return decode_alert(value)
    except AlertDecodeError as error:
        return str(error) or "<no reason given>"


@given(st.binary())
def test_any_bytes_decode_or_say_why(value: bytes) -> None:
    outcome = _outcome(value)
    assert outcome != "<no reason given>"


@given(rows, st.dictionaries(st.sampled_from(AlertRow._fields), json_values, max_size=3))
def test_a_row_with_fields_replaced_by_any_json_decodes_or_says_why(row: AlertRow, changes: dict) -> None:
    record = {**row._asdict(), **changes}
    outcome = _outcome(json.dumps(record, default=datetime.isoformat).encode())
    assert outcome != "<no reason given>"
    if isinstance(outcome, AlertRow):
        assert outcome.ts.tzinfo is not None
        assert outcome.fired_at.tzinfo is not None
        assert isinstance(outcome.occurrences, int)
        assert outcome.occurrences >= 1


@given(rows)
def test_a_row_as_workers_publish_it_comes_back_unchanged(row: AlertRow) -> None:
    assert decode_alert(orjson.dumps(row._asdict())) == row


SUBJECT_FIELDS = ("resource_kind", "resource_id", "key_id")


@given(rows)
def test_a_row_from_a_worker_before_the_subject_fields_decodes_without_them(row: AlertRow) -> None:
    older = {name: value for name, value in row._asdict().items() if name not in SUBJECT_FIELDS}
    decoded = decode_alert(orjson.dumps(older))
    assert decoded == row._replace(resource_kind="", resource_id="", key_id="")
