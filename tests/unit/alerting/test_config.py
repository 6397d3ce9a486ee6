"""alerting.config: the routing file is validated up front with errors that point at the problem."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from alerting.config import (
    ConfigError,
    ConfigSource,
    builtin_config,
    load_config,
    parse_config,
)

DOCS = Path(__file__).resolve().parents[3] / "docs" / "alerting.md"


def minimal(**route: object) -> dict[str, object]:
    return {"receivers": [{"name": "ml"}, {"name": "pager"}], "route": {"receiver": "ml", **route}}


def problems(document: object) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "alerting.yaml")
    return str(caught.value)


def test_every_problem_is_listed_with_its_place() -> None:
    message = problems(
        {
            "receivers": [{"name": "ml", "slak": {}}],
            "route": {"receiver": "ml", "group_wait": "soon", "routes": [{"matchers": ["model=~("]}]},
        }
    )
    assert message.startswith("alerting.yaml: invalid alerting configuration (3 problem(s))")
    assert "receivers[0].slak: Extra inputs are not permitted" in message
    assert "route.group_wait: 'soon' is not a duration" in message
    assert 'route.routes[0].matchers: model=~"(": invalid regular expression' in message


def test_a_route_naming_an_unknown_receiver_is_refused() -> None:
    message = problems(minimal(routes=[{"receiver": "ml"}, {"routes": [{"receiver": "oncall"}]}]))
    assert "route.routes[1].routes[0]: receiver 'oncall' is not defined (receivers: ml, pager)" in message


def test_duplicate_receivers_and_root_matchers_are_refused() -> None:
    assert "defined twice" in problems(
        {"receivers": [{"name": "a"}, {"name": "a"}], "route": {"receiver": "a"}}
    )
    assert "takes no matchers" in problems(minimal(matchers=["model=x"]))


def test_zero_intervals_are_refused_but_zero_group_wait_is_allowed() -> None:
    assert "group_interval: must be longer than zero" in problems(minimal(group_interval="0s"))
    assert parse_config(minimal(group_wait=0)).route.group_wait == 0


def test_unknown_min_severity_is_refused() -> None:
    message = problems({**minimal(), "global": {"min_severity": "urgent"}})
    assert "global.min_severity: unknown severity 'urgent'" in message


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGER_TOKEN", "xoxb-from-env")
    config = parse_config(
        {
            "receivers": [{"name": "p", "slack": {"channel": "#p", "bot_token": "${PAGER_TOKEN}"}}],
            "route": {"receiver": "p"},
        }
    )
    slack = config.receiver("p").slack
    assert slack is not None
    assert slack.bot_token is not None
    assert slack.bot_token.get_secret_value() == "xoxb-from-env"
    assert "xoxb-from-env" not in repr(config)


def test_a_missing_environment_variable_is_named() -> None:
    message = problems(
        {"receivers": [{"name": "h", "webhook": {"url": "${NO_SUCH_VAR_X}"}}], "route": {"receiver": "h"}}
    )
    assert "environment variable NO_SUCH_VAR_X is not set" in message


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("route: [unclosed")
    with pytest.raises(ConfigError, match=f"{bad}: not valid YAML"):
        load_config(bad)
    bad.write_text("- a list")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad)


def test_builtin_configuration_routes_to_console_and_slack() -> None:
    config = builtin_config(console=True, slack=True)
    assert [r.name for r in config.receivers] == ["console", "slack"]
    assert builtin_config(console=False, slack=False).receivers[0].integrations() == {}


def test_the_documented_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_PAGER_TOKEN", "xoxb-example")
    monkeypatch.setenv("SIEM_TOKEN", "token")
    text = DOCS.read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(yaml.safe_load(example), "docs/alerting.md")
    assert {r.name for r in config.receivers} >= {"ml-alerts", "sre-page", "siem", "stream", "terminal"}
    assert config.inhibit_rules


def test_hot_reload_picks_up_valid_changes_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "alerting.yaml"
    path.write_text(yaml.safe_dump(minimal(group_wait="10s")))
    source = ConfigSource(path, builtin_config(console=True, slack=False))
    assert source.current.route.group_wait == 10
    assert source.changed() is None

    path.write_text(yaml.safe_dump(minimal(group_wait="20s")))
    _touch_later(path)
    assert source.changed() is not None
    assert source.current.route.group_wait == 20

    path.write_text(yaml.safe_dump(minimal(group_wait="never")))
    _touch_later(path)
    with pytest.raises(ConfigError, match="group_wait"):
        source.changed()
    assert source.current.route.group_wait == 20
    assert source.changed() is None  # the broken file is reported once, not on every check


def _touch_later(path: Path) -> None:
    stamp = time.time() + 5
    os.utime(path, (stamp, stamp))


@pytest.mark.parametrize(
    "route",
    [
        {"group_by": ["stage", "team"]},
        {"routes": [{"receiver": "pager", "matchers": ["team=sre"]}]},
        {"routes": [{"receiver": "pager", "match": {"cluster": "eu"}}]},
    ],
)
def test_a_label_no_alert_carries_is_refused_instead_of_grouping_everything(route: dict[str, object]) -> None:
    found = problems(minimal(**route))
    assert "alerts have no label" in found
    assert "labels: stage, rule, model, principal, resource, key, severity, alertname" in found


def test_an_inhibit_rule_on_an_unknown_label_is_refused() -> None:
    document = {
        **minimal(),
        "inhibit_rules": [
            {"source_matchers": ["rule=a"], "target_matchers": ["rule=b"], "equal": ["instance"]}
        ],
    }
    assert "no label 'instance'" in problems(document)


def test_alertmanager_syntax_is_accepted_where_the_concepts_match() -> None:
    config = parse_config(
        {
            "receivers": [{"name": "ml"}, {"name": "pager"}],
            "route": {
                "receiver": "ml",
                "group_by": ["alertname", "model"],
                "routes": [
                    {
                        "receiver": "pager",
                        "match": {"severity": "critical"},
                        "match_re": {"alertname": "export-.*"},
                    }
                ],
            },
            "inhibit_rules": [
                {"source_match": {"alertname": "model-quarantined"}, "target_match_re": {"stage": "detector"}}
            ],
        }
    )
    assert config.route.group_by == ("rule", "model")
    [child] = config.route.routes
    assert [str(m) for m in child.matchers] == ['severity="critical"', 'rule=~"export-.*"']
    [rule] = config.inhibit_rules
    assert [str(m) for m in rule.source_matchers] == ['rule="model-quarantined"']
    assert [str(m) for m in rule.target_matchers] == ['stage=~"detector"']
