"""The Slack receiver on its own, in real time, against a local server that speaks Slack's API."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime

import pytest

from alerting.delivery import DeliveryError
from alerting.notifications import AlertSnapshot, Notification, NotificationKind
from sinks.slack import SlackReceiver
from tests.slack_server import FakeSlack

pytestmark = pytest.mark.integration

TOKEN = "xoxb-never-print-me-123"


def _note(n: int = 1, kind: NotificationKind = "firing", group: str = "g1") -> Notification:
    now = datetime.now(UTC)
    alert = AlertSnapshot(
        alert_id=f"a{n}",
        fingerprint="f1",
        state="firing",
        severity="high",
        title="[HIGH] adwin-mean-shift on fraud-v3",
        summary=f"feature 'amount' of fraud-v3 drifted (#{n})",
        labels={"stage": "detector", "rule": "adwin-mean-shift", "model": "fraud-v3", "severity": "high"},
        first_seen=now,
        last_seen=now,
        occurrences=n,
        new_occurrences=n,
        evidence_query="SELECT * FROM findings_unique WHERE model_id = 'fraud-v3'",
    )
    return Notification(
        f"{group}-{n}", group, "ml", kind, {"model": "fraud-v3"}, (alert,), now, 60.0, 300.0, n
    )


def _bot(fake: FakeSlack, **options: float) -> SlackReceiver:
    return SlackReceiver("ml/slack", channel="#sre", bot_token=TOKEN, base_url=fake.base_url, **options)


def test_a_group_is_posted_with_blocks_then_edited_and_threaded(fake_slack: FakeSlack) -> None:
    receiver = _bot(fake_slack, min_interval=0.0)
    receiver.deliver(_note(1))
    receiver.deliver(_note(5, "update"))
    receiver.deliver(_note(6, "repeat"))
    [post] = fake_slack.posts()
    assert post.body["channel"] == "#sre"
    assert post.blocks[0]["type"] == "header"
    assert "findings_unique" in post.rendered
    parent = next(m for m in fake_slack.messages.values() if m.thread_ts is None)
    edits = fake_slack.ok("chat.update")
    assert [e.body["ts"] for e in edits] == [parent.ts, parent.ts]
    [reply] = fake_slack.replies()
    assert reply.body["thread_ts"] == parent.ts
    assert "Still firing" in reply.body["text"]


def test_rate_limit_retry_after_is_honoured_in_real_time(fake_slack: FakeSlack) -> None:
    fake_slack.script.append((429, {"Retry-After": "1"}))
    _bot(fake_slack).deliver(_note())
    refused, delivered = fake_slack.calls
    assert (refused.status, delivered.status) == (429, 200)
    assert delivered.at - refused.at >= 0.95


def test_server_errors_are_retried_with_back_off(fake_slack: FakeSlack) -> None:
    fake_slack.script.extend([(500, {}), (503, {})])
    _bot(fake_slack).deliver(_note())
    assert [c.status for c in fake_slack.calls] == [500, 503, 200]


def test_messages_to_a_channel_are_paced(fake_slack: FakeSlack) -> None:
    receiver = _bot(fake_slack, min_interval=0.3)
    for n in range(3):
        receiver.deliver(_note(n, group=f"g{n}"))
    times = [c.at for c in fake_slack.posts()]
    assert all(b - a >= 0.29 for a, b in itertools.pairwise(times))


def test_a_deleted_message_is_posted_again(fake_slack: FakeSlack) -> None:
    receiver = _bot(fake_slack, min_interval=0.0)
    receiver.deliver(_note(1))
    fake_slack.messages.clear()
    receiver.deliver(_note(2, "update"))
    assert len(fake_slack.posts()) == 2


def test_incoming_webhook_mode(fake_slack: FakeSlack) -> None:
    receiver = SlackReceiver("ml/slack", webhook_url=fake_slack.webhook_url, min_interval=0.0)
    receiver.deliver(_note(1))
    receiver.deliver(_note(2, "update"))  # a webhook cannot edit: nothing to send
    receiver.deliver(_note(3, "resolved"))
    calls = fake_slack.ok("webhook")
    assert len(calls) == 2
    assert "Resolved" in calls[1].rendered


def test_errors_are_classified_and_never_show_the_token(
    fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.script.extend([(500, {})] * 3)
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as caught:
        _bot(fake_slack).deliver(_note())
    assert caught.value.retryable
    assert "service_unavailable" in str(caught.value)
    assert TOKEN not in caplog.text + str(caught.value)


def test_a_bot_token_needs_a_channel() -> None:
    with pytest.raises(ValueError, match="needs a channel"):
        SlackReceiver("x", bot_token=TOKEN)
