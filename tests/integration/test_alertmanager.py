"""The ``alertmanager`` receiver against Debian's prometheus-alertmanager, started by the suite."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
import uuid
from typing import Any

import orjson
import pytest

from alerting import AlertGate, AlertManager, ConfigSource, ManagerOptions, ReceiverContext
from alerting.config import parse_config
from sinks.receivers import build_receiver
from tests.factories import finding

pytestmark = pytest.mark.integration


def active(url: str, principal: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"filter": f'principal="{principal}"'})
    with urllib.request.urlopen(f"{url}/api/v2/alerts?{query}", timeout=10) as response:
        return orjson.loads(response.read())


def test_alerts_fire_and_resolve_in_a_real_alertmanager(alertmanager_url: str) -> None:
    config = parse_config(
        {
            "global": {"resolve_timeout": "1s", "runbook_url_template": "https://wiki.corp/rb/{rule}"},
            "receivers": [{"name": "am", "alertmanager": {"url": alertmanager_url}}],
            "route": {"receiver": "am", "group_wait": "0s", "group_interval": "1s"},
        }
    )
    manager = AlertManager(
        ConfigSource(None, config),
        ReceiverContext(),
        None,
        ManagerOptions(),
        receiver_factory=build_receiver,
        threaded=False,
    )
    principal = f"bob-{uuid.uuid4().hex[:8]}"
    gate = AlertGate()
    for row in gate.admit([finding(rule="export-needs-mfa", principal_id=principal)]):
        manager.notify(row)
    manager.run_once()
    [alert] = active(alertmanager_url, principal)
    assert alert["labels"]["alertname"] == "export-needs-mfa"
    assert alert["labels"]["stage"] == "policy"
    assert alert["annotations"]["runbook_url"] == "https://wiki.corp/rb/export-needs-mfa"
    assert alert["status"]["state"] == "active"

    time.sleep(1.5)  # no new occurrence for resolve_timeout: Vigil resolves it and says so
    manager.run_once()
    deadline = time.monotonic() + 10
    while active(alertmanager_url, principal) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert active(alertmanager_url, principal) == []
    manager.close(timeout=5)
