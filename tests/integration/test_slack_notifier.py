"""Alerts reach Slack through slack-sdk, against a local server that speaks its API."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from schemas.records import AlertRow
from sinks.slack import SlackNotifier
from tests.slack_server import FakeSlack
from vigil.settings import SlackSettings

pytestmark = pytest.mark.integration

TOKEN = "xoxb-never-print-me-123"


def _alert(n: int = 1) -> AlertRow:
    now = datetime.now(UTC)
    return AlertRow(
        alert_id=f"a{n}",
        ts=now,
        fired_at=now,
        fingerprint="f1",
        severity="high",
        title="[HIGH] adwin-mean-shift on fraud-v3",
        summary=f"feature 'amount' of fraud-v3 drifted (#{n})",
        stage="detector",
        detector_or_rule="adwin-mean-shift",
        model_id="fraud-v3",
        principal_id="svc-checkout",
        event_id=f"e{n}",
        occurrences=1,
    )


def _bot(fake: FakeSlack) -> SlackNotifier:
    return SlackNotifier(SlackSettings(bot_token=SecretStr(TOKEN), channel="#sre", base_url=fake.base_url))


def test_alert_is_posted_with_blocks_to_the_channel(fake_slack: FakeSlack) -> None:
    notifier = _bot(fake_slack)
    notifier.notify(_alert())
    notifier.close()
    [call] = fake_slack.delivered()
    assert call.path == "/api/chat.postMessage"
    assert call.body["channel"] == "#sre"
    assert "drifted" in call.body["text"]
    blocks = call.body["blocks"]
    blocks = blocks if isinstance(blocks, list) else json.loads(blocks)
    assert blocks[0]["type"] == "header"
    assert "findings_unique" in str(blocks[-1])
    assert notifier.sent == 1


def test_rate_limit_retry_after_is_honoured(fake_slack: FakeSlack) -> None:
    fake_slack.script.append((429, {"Retry-After": "1"}))
    notifier = _bot(fake_slack)
    notifier.notify(_alert())
    notifier.close()
    refused, delivered = fake_slack.calls
    assert refused.status == 429
    assert delivered.status == 200
    assert delivered.at - refused.at >= 0.95
    assert notifier.sent == 1


def test_server_errors_are_retried_then_delivered_in_order(fake_slack: FakeSlack) -> None:
    fake_slack.script.extend([(500, {}), (503, {})])
    notifier = _bot(fake_slack)
    for n in range(3):
        notifier.notify(_alert(n))
    notifier.close()
    texts = [c.body["text"] for c in fake_slack.delivered()]
    assert [t.rsplit("#", 1)[1] for t in texts] == ["0)", "1)", "2)"]


def test_incoming_webhook_mode(fake_slack: FakeSlack) -> None:
    notifier = SlackNotifier(SlackSettings(webhook_url=SecretStr(fake_slack.webhook_url)))
    notifier.notify(_alert())
    notifier.close()
    [call] = fake_slack.delivered()
    assert call.path.startswith("/services/")


def test_failures_are_counted_and_logged_without_the_token(
    fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.script.extend([(500, {})] * 10)
    notifier = _bot(fake_slack)
    with caplog.at_level(logging.DEBUG):
        notifier.notify(_alert())
        deadline = time.monotonic() + 30
        while notifier.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        notifier.close()
    assert notifier.failed == 1
    assert notifier.sent == 0
    assert "a1" in caplog.text
    assert TOKEN not in caplog.text
