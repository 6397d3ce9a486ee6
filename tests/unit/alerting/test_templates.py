"""alerting.templates: Alertmanager's Slack templates render, and nothing Vigil cannot render is accepted."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.config import ConfigError, parse_config
from alerting.go_template import TemplateError
from alerting.notifications import Notification
from alerting.templates import MessageTemplate
from tests.unit.alerting.test_delivery import note


def two_alerts() -> Notification:
    first = note("fraud-v3", 1)
    [alert] = first.alerts
    other = replace(
        alert,
        alert_id="a-2",
        fingerprint="f-2",
        severity="critical",
        title="[CRITICAL] identity-replay on fraud-v3",
        labels={"model": "fraud-v3", "rule": "identity-replay", "severity": "critical"},
        state="resolved",
    )
    first_alert = replace(alert, labels={**alert.labels, "severity": "high"})
    return replace(first, alerts=(first_alert, other))


def render(source: str, notification: Notification | None = None) -> str:
    return MessageTemplate.parse(source).render(notification or note("fraud-v3", 1))


def test_field_references_render_from_the_notification() -> None:
    text = render(
        "{{ .Status }}: {{ .CommonLabels.alertname }} on {{ .GroupLabels.model }} "
        "({{ .CommonAnnotations.description }})"
    )
    assert text == "firing: rule on fraud-v3 (something happened)"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "{{ range .Alerts }}- {{ .Labels.alertname }} ({{ .Labels.severity }})\n{{ end }}",
            "- rule (high)\n- identity-replay (critical)\n",
        ),
        ("{{ .Alerts.Firing | len }} firing, {{ len .Alerts.Resolved }} resolved", "1 firing, 1 resolved"),
        (
            '{{ if eq .CommonLabels.severity "critical" }}page{{ else if .CommonLabels.model }}'
            "{{ .CommonLabels.model | toUpper }}{{ else }}none{{ end }}",
            "FRAUD-V3",
        ),
        ('{{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join "," }}{{ end }}', ""),
        ("{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }};{{ end }}", "model=fraud-v3;"),
        ("{{ range .Alerts }}{{ .Status }} {{ end -}} .", "firing resolved ."),
        ("a {{- /* trimmed both sides */ -}} b", "ab"),
        ('{{ if and (gt (len .Alerts) 1) (ne .Status "resolved") }}many{{ end }}', "many"),
        ("{{ range .Alerts }}{{ $.GroupLabels.model }}{{ end }}", "fraud-v3fraud-v3"),
        ("{{ range .Alerts.Resolved }}{{ .Fingerprint }}{{ else }}none{{ end }}", "f-2"),
        ('{{ index .CommonLabels "model" }}', "fraud-v3"),
    ],
)
def test_alertmanager_constructs_render_over_a_group(source: str, expected: str) -> None:
    assert render(source, two_alerts()) == expected


def test_alertmanagers_shipped_slack_title_renders() -> None:
    assert render('{{ template "slack.default.title" . }}') == "[FIRING:1] fraud-v3 (rule rule)"
    resolved = replace(note("fraud-v3", 2), kind="resolved")
    assert render('{{ template "slack.default.title" . }}', resolved) == "[RESOLVED] fraud-v3 (rule rule)"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ .CommonLabels.team }}", "no label 'team'"),
        ("{{ range .Alerts }}{{ .Labels.team }}{{ end }}", "no label 'team'"),
        ("{{ if .Status }}{{ else }}{{ .CommonAnnotations.owner }}{{ end }}", "no annotation 'owner'"),
        ("{{ .Alerts.Foo }}", r"no \.Foo on a list of alerts"),
        ("{{ range .Status }}x{{ end }}", "cannot range over a string"),
        ('{{ printf "%s" .Status }}', "function 'printf' is not supported"),
        ("{{ $x := .Status }}", "variables"),
        ("{{ .Status | .Receiver }}", "only a function takes a piped value"),
        ('{{ template "mine" . }}', 'template "mine" is not defined'),
        ('{{ template "slack.default.title" }}', 'pass "."'),
        ("{{ if .Status }}x", r"\{\{if\}\} has no \{\{end\}\}"),
        ("{{ end }}", "without an open"),
        ('{{ define "x" }}y{{ end }}', "not supported"),
        ("{{ .Status", "unclosed action"),
        ("{{ len .Alerts .Alerts }}", "len takes 1 to 1 arguments"),
    ],
)
def test_what_vigil_cannot_render_is_refused(source: str, problem: str) -> None:
    with pytest.raises(TemplateError, match=problem):
        MessageTemplate.parse(source)


FRAGMENTS = st.sampled_from(
    [
        "{{",
        "}}",
        "{{-",
        "-}}",
        " ",
        "x",
        ".Status",
        ".Alerts",
        ".Labels",
        ".CommonLabels",
        ".alertname",
        ".model",
        "range",
        "if",
        "else",
        "end",
        "with",
        "|",
        "len",
        "join",
        '"a"',
        "`b`",
        "(",
        ")",
        "1",
        "eq",
        "template",
        '"__subject"',
        ".",
        "$",
        "/*",
        "*/",
        "\\",
        '"',
        "Remove",
        ".Names",
        "not",
    ]
)


@given(st.lists(FRAGMENTS, max_size=30).map("".join))
def test_any_text_is_accepted_and_renders_or_is_refused_with_a_reason(source: str) -> None:
    outcome = parse_or_reason(source)
    if isinstance(outcome, str):
        assert outcome  # refused, and the reason is said
    else:
        assert isinstance(outcome.render(two_alerts()), str)


def parse_or_reason(source: str) -> MessageTemplate | str:
    try:
        return MessageTemplate.parse(source)
    except TemplateError as error:
        return str(error)


def test_alertmanager_slack_configs_are_accepted() -> None:
    config = parse_config(
        {
            "receivers": [
                {
                    "name": "sre",
                    "slack_configs": [
                        {
                            "channel": "#sre",
                            "title": '{{ template "slack.default.title" . }}',
                            "send_resolved": False,
                        },
                        {
                            "api_url": "https://hooks.slack.example/T/B/x",
                            "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
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
            {"name": "sre", "slack_configs": [{"channel": "#sre", "title": "{{ .CommonLabels.team }}"}]}
        ],
        "route": {"receiver": "sre"},
    }
    with pytest.raises(ConfigError, match=r"receivers\[0\]\.slack_configs\[0\]\.title.*no label 'team'"):
        parse_config(document)
