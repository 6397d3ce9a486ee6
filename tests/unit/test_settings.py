"""vigil.settings: one loader whose every problem is one line, and settings that take effect."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.config import SlackConfig
from alerting.receivers import ReceiverContext
from sinks.receivers import build_receiver
from vigil.runtime import alerting_source
from vigil.settings import InvalidSettingsError, Settings, load_settings


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [*Settings.variables(), "VIGIL_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def problem(in_tmp: Path) -> str:
    with pytest.raises(InvalidSettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_malformed_file_names_itself_and_the_place(in_tmp: Path) -> None:
    (in_tmp / "vigil.toml").write_text("[kafka\n")
    assert problem(in_tmp).startswith("vigil.toml: not valid TOML (Expected ']' at the end of a table")


def test_values_from_the_environment_name_their_variable(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_KAFKA_PARTITIONS", "many")
    assert "kafka.partitions (VIGIL_KAFKA_PARTITIONS): Input should be a valid integer" in problem(in_tmp)


def test_a_rule_across_settings_is_said_without_pydantic_noise(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_IDENTITY_JWKS", "jwks.json")
    message = problem(in_tmp)
    assert "identity.jwks needs identity.jwt_issuer (VIGIL_IDENTITY_JWT_ISSUER)" in message
    assert "errors.pydantic.dev" not in message
    assert "Value error" not in message


def test_the_file_named_by_vigil_config_must_exist(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_CONFIG", "prod.toml")
    assert problem(in_tmp) == "VIGIL_CONFIG names prod.toml, which does not exist; fix or unset it"


def test_slack_timeout_reaches_slack_receivers_without_their_own() -> None:
    context = ReceiverContext(slack_bot_token="xoxb-test", slack_channel="#ai", slack_timeout=3.0)
    default = build_receiver("ops", "slack", SlackConfig(), context)
    own = build_receiver("ops", "slack", SlackConfig(timeout=7), context)
    assert default._web.timeout == 3  # type: ignore[attr-defined]
    assert own._web.timeout == 7  # type: ignore[attr-defined]


def test_alert_repeat_seconds_is_how_often_the_built_in_route_reminds() -> None:
    route = alerting_source(Settings(alert_repeat_seconds=600)).current.route
    assert route.repeat_interval == 600
    assert route.group_interval == 300
