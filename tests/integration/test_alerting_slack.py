"""Alerting end to end against a local Slack: grouping, routing, inhibition, silences,
resolution, acknowledgement, rate limits and outages, on a clock the tests move.

slack-sdk talks HTTP to ``tests/slack_server.FakeSlack``; the clock, the sleeps of
the retry handlers and the per-channel pacing are all the rig's fake clock, so
minutes of alerting take milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from alerting import AlertingStore
from alerting.matchers import parse_matcher
from alerting.silences import new_silence
from sinks.clickhouse import ClickHouseStore
from tests.factories import finding
from tests.integration.alerting_rig import Rig, alerting_store, slack_config
from tests.slack_server import FakeSlack

pytestmark = pytest.mark.integration


def drift(model: str = "fraud-v3", **fields: object) -> object:
    return finding(stage="detector", rule="adwin-mean-shift", severity="medium", model_id=model, **fields)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AlertingStore]:
    with alerting_store(tmp_path) as opened:
        yield opened


def test_100_identical_findings_in_10s_are_one_message_and_one_update(fake_slack: FakeSlack) -> None:
    rig = Rig(fake_slack)
    for _ in range(100):
        rig.feed(drift())
        rig.run(0.1, step=0.1)
    rig.run(70)
    [post] = fake_slack.posts()
    [update] = fake_slack.ok("chat.update")
    assert fake_slack.replies() == []
    assert post.body["channel"] == "#ml-alerts"
    assert update.body["ts"] == fake_slack.messages[update.body["ts"]].ts
    assert "*Occurrences*\\n100\\n" in update.rendered
    assert "more adwin-mean-shift findings on fraud-v3 in the last 1 min (100 in total)" in update.rendered
    assert rig.manager.metrics.snapshot()["alerts_received"] == 100


def test_severity_routes_to_two_channels(fake_slack: FakeSlack) -> None:
    rig = Rig(fake_slack)
    rig.feed(drift(), finding(stage="policy", rule="export-needs-mfa", severity="high", principal_id="bob"))
    rig.run(6)
    channels = {c.body["channel"]: c.body["text"] for c in fake_slack.posts()}
    assert set(channels) == {"#ml-alerts", "#sre-page"}
    assert "adwin-mean-shift" in channels["#ml-alerts"]
    assert "export-needs-mfa" in channels["#sre-page"]


def test_a_quarantined_models_drift_is_inhibited(fake_slack: FakeSlack) -> None:
    rig = Rig(fake_slack)
    rig.feed(finding(stage="policy", rule="model-quarantined", severity="medium", model_id="fraud-v3"))
    rig.feed(drift("fraud-v3"), drift("credit-v2"))
    rig.run(6)
    texts = sorted(c.body["text"] for c in fake_slack.posts())
    assert len(texts) == 2
    assert "credit-v2" in texts[0]
    assert "model-quarantined" in texts[1]


def test_silences_in_clickhouse_are_honoured_recorded_and_can_end(
    fake_slack: FakeSlack, store: AlertingStore
) -> None:
    rig = Rig(fake_slack, store=store)
    silence = new_silence(
        [parse_matcher("model=fraud-v3")], timedelta(hours=2), "retraining", "dana", rig.clock.wall()
    )
    store.write({"silences": [silence.row()]})  # as `vigil silence add` does
    rig.run(6)
    rig.feed(drift("fraud-v3"), drift("credit-v2"))
    rig.run(6)
    assert [c.body["text"] for c in fake_slack.posts() if "fraud-v3" in c.body["text"]] == []
    recorded = store.reader.rows(
        "SELECT state, suppressed_by FROM alert_states FINAL WHERE labels['model'] = 'fraud-v3'"
    )
    assert recorded == [{"state": "silenced", "suppressed_by": silence.silence_id}]

    store.write({"silences": [silence.expired(rig.clock.wall()).row()]})  # `vigil silence expire`
    rig.feed(drift("fraud-v3"))
    rig.run(70)
    assert any("fraud-v3" in c.body["text"] for c in fake_slack.posts())


def test_quiet_alerts_resolve_in_the_same_thread(fake_slack: FakeSlack) -> None:
    rig = Rig(fake_slack)
    rig.feed(drift())
    rig.run(6)
    [post] = fake_slack.posts()
    parent_ts = fake_slack.messages and next(
        m.ts for m in fake_slack.messages.values() if m.thread_ts is None
    )
    rig.run(5 * 60 + 61)
    [reply] = fake_slack.replies()
    assert reply.body["thread_ts"] == parent_ts
    assert "Resolved" in reply.body["text"]
    assert "no new occurrence for 5 min" in reply.body["text"]
    [edit] = fake_slack.ok("chat.update")
    assert edit.body["ts"] == parent_ts
    assert "[RESOLVED]" in edit.rendered
    assert rig.manager.dispatcher.groups == {}
    rig.feed(drift())  # it comes back: a new alert, a new thread
    rig.run(6)
    assert len(fake_slack.posts()) == 2
    assert post.body["text"] != ""


def test_rate_limit_retry_after_is_honoured(fake_slack: FakeSlack) -> None:
    rig = Rig(fake_slack)
    fake_slack.script.append((429, {"Retry-After": "7"}))
    rig.feed(drift())
    rig.run(6)
    refused, delivered = fake_slack.calls[:2]
    assert (refused.status, delivered.status) == (429, 200)
    assert 7.0 in rig.clock.sleeps  # slack-sdk's RateLimitErrorRetryHandler waited Retry-After
    assert len(fake_slack.posts()) == 1


def test_a_five_minute_outage_delays_but_loses_nothing_and_keeps_order(
    fake_slack: FakeSlack, store: AlertingStore
) -> None:
    rig = Rig(fake_slack, store=store)
    fake_slack.down = True
    rig.feed(drift("fraud-v3"))
    rig.run(60)
    rig.feed(drift("credit-v2"), drift("fraud-v3"))
    rig.run(60)
    rig.feed(finding(stage="policy", rule="export-needs-mfa", severity="high", principal_id="bob"))
    rig.run(180)
    assert fake_slack.delivered() == []
    assert rig.manager.pending() == {"ml/slack": 2, "pager/slack": 1}
    owed = store.reader.rows(
        "SELECT notification_id, status, attempts FROM notifications FINAL ORDER BY created_at"
    )
    assert [r["status"] for r in owed] == ["pending"] * 3
    assert owed[0]["attempts"] >= 8  # the head is retried with back-off...
    assert owed[1]["attempts"] == 0  # ...and what queues behind it waits its turn

    fake_slack.down = False  # five minutes later Slack is back
    rig.run(120)
    posts = fake_slack.posts()
    ml = [c for c in posts if c.body["channel"] == "#ml-alerts"]
    assert ["fraud-v3" in ml[0].body["text"], "credit-v2" in ml[1].body["text"]] == [True, True]
    assert [c.body["channel"] for c in posts].count("#sre-page") == 1
    assert "*Occurrences*\\n2\\n" in ml[0].rendered  # the update that waited was folded in
    assert rig.manager.pending() == {"ml/slack": 0, "pager/slack": 0}
    statuses = store.reader.rows("SELECT status FROM notifications FINAL")
    assert {r["status"] for r in statuses} == {"delivered"}


def test_owed_notifications_survive_a_restart(fake_slack: FakeSlack, tmp_path: Path) -> None:
    first = Rig(fake_slack, state_dir=tmp_path / "alerting")
    fake_slack.down = True
    first.feed(drift())
    first.run(6)
    first.manager.close(timeout=0)
    assert fake_slack.delivered() == []
    fake_slack.down = False
    second = Rig(fake_slack, state_dir=tmp_path / "alerting", clock=first.clock)
    second.run(1)
    [post] = fake_slack.posts()
    assert "fraud-v3" in post.body["text"]


def test_a_thread_reply_acknowledges_and_the_next_update_shows_it(
    fake_slack: FakeSlack, store: AlertingStore
) -> None:
    rig = Rig(fake_slack, store=store)
    rig.feed(drift())
    rig.run(6)
    parent = next(m for m in fake_slack.messages.values() if m.thread_ts is None)
    fake_slack.reply(parent.ts, "U42SRE", "ack - looking into it")
    rig.run(40)
    [edit] = fake_slack.ok("chat.update")
    assert "Acknowledged by <@U42SRE>" in edit.rendered
    acks = store.reader.rows("SELECT target_id, acked_by, via FROM alert_acks FINAL")
    assert acks == [
        {
            "target_id": rig.manager.dispatcher.alerts[next(iter(rig.manager.dispatcher.alerts))].alert_id
            and next(iter(rig.manager.dispatcher.groups)),
            "acked_by": "U42SRE",
            "via": "slack",
        }
    ]
    polls = len(fake_slack.ok("conversations.replies"))
    rig.run(120)
    assert len(fake_slack.ok("conversations.replies")) == polls  # acknowledged threads are not read again


def test_a_slack_ack_covers_what_fired_before_the_reply_not_before_it_was_read(
    fake_slack: FakeSlack, store: AlertingStore
) -> None:
    rig = Rig(fake_slack, config=slack_config(group_by=["stage", "model"]), store=store)
    rig.feed(drift())
    rig.run(6)
    parent = next(m for m in fake_slack.messages.values() if m.thread_ts is None)
    fake_slack.reply(parent.ts, "U42SRE", "ack")
    rig.run(2)
    rig.feed(finding(stage="detector", rule="psi-shift", severity="medium", model_id="fraud-v3"))
    rig.run(40)  # the thread is read up to 30 s after the reply
    by_rule = {a.labels["rule"]: a for a in rig.manager.dispatcher.alerts.values()}
    assert by_rule["adwin-mean-shift"].acked_by == "U42SRE"
    assert (by_rule["psi-shift"].state, by_rule["psi-shift"].acked_by) == ("firing", "")


def test_blocks_carry_controls_runbook_and_evidence(fake_slack: FakeSlack, store: AlertingStore) -> None:
    denial = finding(stage="policy", rule="export-needs-mfa", severity="high", principal_id="bob")
    denial = denial._replace(
        details=orjson.dumps(
            {
                "controls": ["nist-800-207:tenet-6", "eu-ai-act:art-15"],
                "runbooks": ["https://runbooks.example/mfa"],
            }
        ).decode()
    )
    ClickHouseStore(store.client).write({"findings": [denial]})
    rig = Rig(fake_slack, store=store)
    rig.feed(denial)
    rig.run(6)
    [post] = fake_slack.posts()
    blocks = post.blocks
    assert blocks[0]["type"] == "header"
    text = json.dumps(blocks)
    assert "`nist-800-207:tenet-6`, `eu-ai-act:art-15`" in text
    assert "https://runbooks.example/mfa" in text
    assert "FROM findings_unique WHERE stage = 'policy'" in text
    assert "principal_id = 'bob'" in text
    assert "vigil alerts ack" in text


def test_incoming_webhook_mode_posts_changes_but_not_count_edits(fake_slack: FakeSlack) -> None:
    config = slack_config()
    config["receivers"][0]["slack"] = {"webhook_url": fake_slack.webhook_url}
    rig = Rig(fake_slack, config)
    rig.feed(drift())
    rig.run(6)
    for _ in range(10):
        rig.feed(drift())
    rig.run(70)
    [call] = fake_slack.ok("webhook")
    assert "adwin-mean-shift on fraud-v3" in call.body["text"]


def test_generic_webhook_gets_an_alertmanager_shaped_document(fake_slack: FakeSlack) -> None:
    config = slack_config()
    config["receivers"][0] = {"name": "ml", "webhook": {"url": fake_slack.webhook_url}}
    rig = Rig(fake_slack, config)
    rig.feed(drift())
    rig.run(6)
    [call] = fake_slack.ok("webhook")
    document = call.body
    assert (document["status"], document["kind"], document["receiver"]) == ("firing", "firing", "ml")
    assert document["groupLabels"] == {"stage": "detector", "rule": "adwin-mean-shift", "model": "fraud-v3"}
    [alert] = document["alerts"]
    assert alert["labels"]["model"] == "fraud-v3"
    assert alert["occurrences"] == 1
    assert "findings_unique" in alert["annotations"]["evidence_query"]


def test_a_restart_inside_the_group_wait_notifies_once_when_the_wait_ends(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    first = Rig(fake_slack, state_dir=tmp_path / "alerting")
    first.feed(drift(), drift())
    first.run(2)  # killed 2 s into the 5 s group wait: no close, nothing flushed
    second = Rig(fake_slack, state_dir=tmp_path / "alerting", clock=first.clock)
    second.run(2)
    assert fake_slack.posts() == []  # the restored group still waits its turn
    second.run(2)
    [post] = fake_slack.posts()
    assert "*Occurrences*\\n2\\n" in post.rendered
    second.run(120)
    assert len(fake_slack.posts()) == 1


def test_a_restart_continues_the_groups_thread_and_counts(fake_slack: FakeSlack, tmp_path: Path) -> None:
    config = slack_config(group_by=["stage", "model"])
    first = Rig(fake_slack, config, state_dir=tmp_path / "alerting")
    first.feed(drift())
    first.run(6)
    [post] = fake_slack.posts()
    parent_ts = next(m.ts for m in fake_slack.messages.values() if m.thread_ts is None)
    second = Rig(fake_slack, config, state_dir=tmp_path / "alerting", clock=first.clock)
    second.gate = first.gate  # the workers carry on; only the notifier restarted
    page_hinkley = finding(stage="detector", rule="page-hinkley", severity="medium", model_id="fraud-v3")
    second.feed(drift(), page_hinkley)
    second.run(70)
    assert fake_slack.posts() == [post]
    [reply] = fake_slack.replies()
    assert reply.body["thread_ts"] == parent_ts
    [edit] = fake_slack.ok("chat.update")
    assert edit.body["ts"] == parent_ts
    assert "*Occurrences*\\n2\\n" in edit.rendered  # the count carried over the restart


def test_alert_rows_redelivered_after_a_crash_are_applied_once(fake_slack: FakeSlack, tmp_path: Path) -> None:
    first = Rig(fake_slack, state_dir=tmp_path / "alerting")
    rows = first.gate.admit([drift(), drift()])
    positions = [("ai.alerts", 0, offset) for offset in range(len(rows))]
    assert first.manager.ingest(rows, positions) == len(rows) == 1
    second = Rig(fake_slack, state_dir=tmp_path / "alerting", clock=first.clock)
    assert second.manager.ingest(rows, positions) == 0  # the consumer resumed before the saved position
    second.run(6)
    [post] = fake_slack.posts()
    assert "*Occurrences*\\n2\\n" in post.rendered


def test_failures_never_log_the_token(fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    from tests.integration.alerting_rig import TOKEN

    fake_slack.down = True
    rig = Rig(fake_slack)
    with caplog.at_level("DEBUG"):
        rig.feed(drift())
        rig.run(30)
    assert "retrying" in caplog.text
    assert TOKEN not in caplog.text


def test_alertmanager_slack_configs_title_and_text_shape_the_message(fake_slack: FakeSlack) -> None:
    config = slack_config()
    config["receivers"][0] = {
        "name": "ml",
        "slack_configs": [
            {
                "channel": "#ml-alerts",
                "title": "{{ .CommonLabels.alertname }} on {{ .CommonLabels.model }} is {{ .Status }}",
                "text": "Runbook: {{ .CommonAnnotations.runbook_url }}",
            }
        ],
    }
    config["global"]["runbook_url_template"] = "https://wiki.corp/rb/{rule}"
    rig = Rig(fake_slack, config)
    rig.feed(drift())
    rig.run(6)
    [post] = fake_slack.posts()
    assert post.body["channel"] == "#ml-alerts"
    assert post.blocks[0]["text"]["text"] == "adwin-mean-shift on fraud-v3 is firing"
    assert "Runbook: https://wiki.corp/rb/adwin-mean-shift" in post.blocks[1]["text"]["text"]
