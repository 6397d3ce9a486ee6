"""A key that may backfill: its old events are verified, everything else is judged as usual."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from identity.freshness import ReplayGuard
from identity.keyring import KeyringError
from identity.verify import IdentityVerifier
from policies.bundle import load_bundle
from policies.engine import PolicyEngine
from schemas.decode import Decoded, decode
from streams.publisher import Outgoing, event_millis, preview
from tests.clock import wall_now
from tests.factories import (
    KEYS,
    SigningKey,
    access_doc,
    build_inventory,
    direct_keyring,
    key_entries,
    make_keyring,
    signed,
)
from vigil.pipeline import Pipeline, RawMessage
from vigil.settings import Settings

BACKFILL = SigningKey("data-portal-backfill", b"data-portal-backfill-secret-0001", "plain", ("data-portal",))
NOW = wall_now()


def verifier(**backfill: Any) -> IdentityVerifier:
    entry = {**key_entries({"b": BACKFILL})[0], "backfill": True, **backfill}
    return IdentityVerifier(direct_keyring([*key_entries(), entry]), replay=ReplayGuard(clock=lambda: NOW))


def decoded(document: dict[str, Any]) -> Decoded:
    outcome = decode(orjson.dumps(document))
    assert isinstance(outcome, Decoded)
    return outcome


def verdict_of(
    identity: IdentityVerifier, document: dict[str, Any], offset: int = 0, arrival: datetime = NOW
) -> str:
    d = decoded(document)
    return identity.verify(d.event, d.canonical, ("ai.access", 0, offset), arrival).reason


def days_ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat(timespec="milliseconds")


def test_an_old_event_is_verified_as_a_backfill_with_a_backfill_key_and_stale_with_another() -> None:
    identity = verifier()
    old = access_doc(ts=days_ago(3))
    assert verdict_of(identity, signed(old, BACKFILL)) == "backfill"
    assert verdict_of(identity, signed(old, KEYS["data-portal"]), offset=1) == "stale"


def test_a_fresh_event_of_a_backfill_key_is_ok_and_a_future_one_stale() -> None:
    identity = verifier()
    assert verdict_of(identity, signed(access_doc(ts=days_ago(0)), BACKFILL)) == "ok"
    assert verdict_of(identity, signed(access_doc(ts=days_ago(-1)), BACKFILL), offset=1) == "stale"


def test_outside_its_window_a_backfill_key_is_judged_as_usual() -> None:
    identity = verifier(backfill_from=NOW - timedelta(hours=1), backfill_until=NOW + timedelta(hours=1))
    old = signed(access_doc(ts=days_ago(3)), BACKFILL)
    assert verdict_of(identity, old, arrival=NOW) == "backfill"
    late = signed(access_doc(ts=days_ago(3)), BACKFILL)
    assert verdict_of(identity, late, offset=1, arrival=NOW + timedelta(hours=2)) == "stale"


def test_a_backfilled_event_sent_again_is_a_replay_even_after_live_traffic_moved_on() -> None:
    identity = verifier()
    old = signed(access_doc(ts=days_ago(3)), BACKFILL)
    assert verdict_of(identity, old, offset=0) == "backfill"
    assert verdict_of(identity, signed(access_doc(ts=days_ago(0))), offset=1) == "ok"
    assert verdict_of(identity, old, offset=2) == "replay"
    assert verdict_of(identity, old, offset=0) == "backfill"  # the same message redelivered


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"backfill_until": "2026-01-01T00:00:00Z"}, "need `backfill: true`"),
        (
            {
                "backfill": True,
                "backfill_from": "2026-02-01T00:00:00Z",
                "backfill_until": "2026-01-01T00:00:00Z",
            },
            "backfill_until must be later than backfill_from",
        ),
    ],
)
def test_a_backfill_window_is_checked_when_the_key_file_loads(
    tmp_path: Path, fields: dict[str, Any], problem: str
) -> None:
    with pytest.raises(KeyringError, match=problem):
        make_keyring(tmp_path, [{**key_entries({"b": BACKFILL})[0], **fields}])


def test_publish_with_event_time_sets_the_message_time_from_ts() -> None:
    keyring = direct_keyring(key_entries())
    ts = "2026-03-01T12:00:00.250+01:00"
    shown, report = preview([orjson.dumps(access_doc(ts=ts))], Outgoing(Settings(), keyring, event_time=True))
    assert report.errors == []
    assert orjson.loads(shown[0])["timestamp_ms"] == int(datetime.fromisoformat(ts).timestamp() * 1000)
    plain, _ = preview([orjson.dumps(access_doc(ts=ts))], Outgoing(Settings(), keyring))
    assert "timestamp_ms" not in orjson.loads(plain[0])


@pytest.mark.parametrize("document", [{"ts": "yesterday"}, {"ts": 5}, {}, {"ts": "2026-03-01T12:00:00"}])
def test_a_ts_that_cannot_be_the_message_time_is_named(document: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="is not an RFC 3339 time with an offset"):
        event_millis(document)


def test_the_skew_limit_still_bounds_a_backfill() -> None:
    pipeline = Pipeline(
        verifier(),
        PolicyEngine(load_bundle(), build_inventory()),
        max_clock_skew=timedelta(days=30),
        wall_clock=lambda: NOW,
    )
    batch = [
        RawMessage(
            orjson.dumps(signed(access_doc(ts=days_ago(days)), BACKFILL)),
            "ai.access",
            offset=n,
            timestamp=NOW,
        )
        for n, days in enumerate((3, 40))
    ]
    result = pipeline.process(batch)
    assert [(e.verified, e.verify_reason) for e in result.events] == [(True, "backfill")]
    assert [r.code for r in result.rejected] == ["ts_out_of_range"]
