"""Strings a publisher chose stay inert in every place an alert is shown.

An unsigned event can carry any model id or principal id; they reach alert
summaries, labels, titles, the runbook link and the evidence command. Each hostile
string goes through the Slack renderer (message and thread reply), the console,
the webhook payload and the evidence shell line.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from alerting import AlertGate, Dispatcher
from alerting.config import parse_config
from alerting.notifications import Notification
from sinks.console import ConsoleReceiver
from sinks.receivers import alertmanager_document
from sinks.slack import render, render_reply
from sinks.text import shell_command
from tests.clock import FakeClock
from tests.factories import finding

HOSTILE = [
    "<!channel>",
    "<!here|here>",
    "<@U0ADMIN>",
    "<https://evil.example|https://sso.corp.example>",
    "$(touch {marker})",
    "`touch {marker}`",
    "'; touch {marker}; echo '",
    '"; touch {marker}; echo "',
    "\x1b[2J\x1b[31mFAKE ALERT\x1b[0m",
    "\x9b31m",
    "fraud\u202eexe.3v",
    "a\u200bb\u2066c\u2069",
    "line\nbreak\r",
    "*bold* _it_ ~strike~ ```block```",
    "&amp; &lt;",
]

CONFIG: dict[str, Any] = {
    "global": {"resolve_timeout": "5m", "runbook_url_template": "https://runbooks.example/{model}"},
    "receivers": [{"name": "ml"}],
    "route": {"receiver": "ml", "group_by": ["stage", "model"], "group_wait": "1s"},
}


def _notifications(value: str, clock: FakeClock) -> list[Notification]:
    parsed = parse_config(CONFIG)
    gate = AlertGate(resolve_timeout=300, clock=clock, wall_clock=clock.wall)
    dispatcher = Dispatcher(parsed, clock, clock.wall)
    for row in gate.admit(
        [finding(stage="policy", rule="export-needs-mfa", model_id=value, principal_id=value)]
    ):
        dispatcher.ingest(row)
    clock.advance(2)
    sent = dispatcher.tick().notifications
    for row in gate.admit([finding(stage="policy", rule="default-deny", model_id=value, principal_id=value)]):
        dispatcher.ingest(row)
    clock.advance(400)
    sent += dispatcher.tick(force=True).notifications
    assert sent
    return sent


def _slack_texts(blocks: Any) -> list[str]:
    """Every text Slack would parse as mrkdwn."""
    found: list[str] = []
    if isinstance(blocks, dict):
        if blocks.get("type") == "mrkdwn":
            found.append(blocks["text"])
        for value in blocks.values():
            found += _slack_texts(value)
    elif isinstance(blocks, list):
        for value in blocks:
            found += _slack_texts(value)
    return found


@pytest.mark.parametrize("template", HOSTILE)
def test_slack_messages_form_no_mention_link_or_control(
    template: str, clock: FakeClock, tmp_path: Path
) -> None:
    value = template.format(marker=tmp_path / "owned")
    for notification in _notifications(value, clock):
        for text, blocks in (render(notification), render_reply(notification)):
            for shown in [text, *_slack_texts(blocks)]:
                assert "<!" not in shown
                assert "<@U0ADMIN" not in shown
                assert "<https://evil" not in shown
                assert not any(c in shown for c in "\x1b\x9b\u202e\u200b\u2066\r")
            plain = [b["text"]["text"] for b in blocks if b.get("type") == "header"]
            assert not any(c in "".join(plain) for c in "\x1b\x9b\u202e\u200b\u2066\r")


@pytest.mark.parametrize("template", HOSTILE)
def test_the_console_prints_no_control_characters(template: str, clock: FakeClock, tmp_path: Path) -> None:
    out = io.StringIO()
    console = ConsoleReceiver(stream=out, colour=False)
    for notification in _notifications(template.format(marker=tmp_path / "owned"), clock):
        console.deliver(notification)
    printed = out.getvalue()
    assert printed
    assert not any(c in printed for c in "\x1b\x9b\u202e\u200b\u2066\r")
    assert all(line.startswith(("ALERT", "RESOLVED", "STILL")) for line in printed.splitlines())


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("template", HOSTILE)
def test_the_evidence_command_runs_only_vigil_sql_with_the_query(
    template: str, clock: FakeClock, tmp_path: Path
) -> None:
    marker = tmp_path / "owned"
    [first, *_] = _notifications(template.format(marker=marker), clock)
    query = first.alerts[0].evidence_query
    command = shell_command(query).replace("vigil sql ", "printf '%s\\0' ", 1)
    argv = subprocess.run(["bash", "-c", command], capture_output=True, check=True).stdout
    assert argv.split(b"\0")[:-1] == [query.encode()]
    assert not marker.exists()


@pytest.mark.parametrize("template", HOSTILE)
def test_the_runbook_link_keeps_labels_inside_its_path(template: str, clock: FakeClock) -> None:
    [first, *_] = _notifications(template, clock)
    url = first.alerts[0].runbook_url
    assert url.startswith("https://runbooks.example/")
    assert not any(c in url for c in "<>| \n\x1b`\"'")


@pytest.mark.parametrize("template", HOSTILE)
def test_the_webhook_carries_the_text_as_data(template: str, clock: FakeClock) -> None:
    [first, *_] = _notifications(template, clock)
    payload = json.loads(json.dumps(alertmanager_document(first)))
    assert payload["alerts"][0]["labels"]["model"] == template
