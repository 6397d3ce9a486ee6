"""alerting.templates: Alertmanager-style field references, and nothing Vigil cannot render."""

from __future__ import annotations

import pytest

from alerting.config import ConfigError, parse_config
from alerting.templates import MessageTemplate
from tests.unit.alerting.test_delivery import note


def test_field_references_render_from_the_notification() -> None:
    template = MessageTemplate.parse(
        "{{ .Status }}: {{ .CommonLabels.alertname }} on {{ .GroupLabels.model }} "
        "({{ .CommonAnnotations.description }})"
    )
    assert template.render(note("fraud-v3", 1)) == "firing: rule on fraud-v3 (something happened)"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{{ range .Alerts }}x{{ end }}", "not supported"),
        ("{{ .CommonLabels.team }}", "no 'team' in .CommonLabels"),
        ("{{ .Alerts }}", "not one Vigil provides"),
        ("{{ .CommonLabels.model | toUpper }}", "not supported"),
    ],
)
def test_what_vigil_cannot_render_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        MessageTemplate.parse(text)


def test_alertmanager_slack_configs_are_accepted() -> None:
    config = parse_config(
        {
            "receivers": [
                {
                    "name": "sre",
                    "slack_configs": [
                        {"channel": "#sre", "title": "{{ .CommonLabels.alertname }}", "send_resolved": False},
                        {
                            "api_url": "https://hooks.slack.example/T/B/x",
                            "text": "{{ .CommonAnnotations.summary }}",
                        },
                    ],
                }
            ],
            "route": {"receiver": "sre"},
        }
    )
    integrations = config.receivers[0].integrations()
    assert list(integrations) == ["slack.0", "slack.1"]
    assert integrations["slack.1"].webhook_url is not None  # type: ignore[attr-defined]


def test_a_bad_template_is_a_configuration_error_with_its_place() -> None:
    document = {
        "receivers": [
            {"name": "sre", "slack_configs": [{"channel": "#sre", "title": "{{ if .Status }}x{{ end }}"}]}
        ],
        "route": {"receiver": "sre"},
    }
    with pytest.raises(ConfigError, match=r"receivers\[0\]\.slack_configs\[0\]\.title"):
        parse_config(document)
