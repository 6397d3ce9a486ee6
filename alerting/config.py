"""The routing configuration: an Alertmanager-shaped YAML file, validated up front.

A configuration names receivers (Slack by bot token and channel or by incoming
webhook, a generic webhook, the console, a Kafka topic), a route tree that picks
receivers by label matchers and says how to group and how often to notify, inhibit
rules, and annotations (runbook links, controls) by matcher. Everything is checked
when loaded: an unknown key, a receiver a route names but nobody defined, a bad
matcher or duration is an error that names its place in the file, and a running
manager keeps its last good configuration when a reload fails.

Secrets stay out of the file: ``${NAME}`` in ``bot_token``, ``webhook_url``, ``url``
or webhook header values is read from the environment, and a Slack receiver with
neither token nor webhook uses ``VIGIL_SLACK_BOT_TOKEN`` / ``VIGIL_SLACK_WEBHOOK_URL``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from alerting.matchers import Matcher, MatcherError, parse_matcher
from alerting.model import LABEL_NAMES
from alerting.templates import MessageTemplate
from alerting.time_intervals import TimeInterval, TimeSpec
from schemas import parse_severity
from schemas.durations import duration_seconds

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ALL_LABELS = "..."
"""``group_by: ['...']`` groups by every label: each alert is its own group."""
LABEL_ALIASES = {"alertname": "rule"}
"""Alertmanager's name for what Vigil calls the rule, accepted wherever a label is named."""


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem and where it is."""


Duration = Annotated[float, BeforeValidator(duration_seconds)]
"""Seconds, written as a number or in the one duration grammar (schemas/durations.py)."""


def _http_url(value: object, whose: str) -> object:
    """A receiver URL with ``${NAME}`` read from the environment; only http(s) is taken."""
    value = _expand_env(value) if isinstance(value, str) else value
    if isinstance(value, str) and not value.startswith(("http://", "https://")):
        raise ValueError(f"{whose} url starts with http:// or https://")
    return value


def _expand_env(value: str) -> str:
    def lookup(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REFERENCE.sub(lookup, value)


def _matchers(values: Sequence[str]) -> tuple[Matcher, ...]:
    try:
        return tuple(parse_matcher(v) for v in values)
    except MatcherError as error:
        raise ValueError(str(error)) from None


def _label(name: str) -> str:
    """A label name as alerts carry it; one they never carry is an error, not a silent no-match."""
    name = LABEL_ALIASES.get(name, name)
    if name not in LABEL_NAMES:
        known = ", ".join([*LABEL_NAMES, *LABEL_ALIASES])
        raise ValueError(f"alerts have no label {name!r} (labels: {known})")
    return name


def _known(matchers: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
    return tuple(m if m.name in LABEL_NAMES else replace(m, name=_label(m.name)) for m in matchers)


def _from_match(data: object, pairs: dict[str, tuple[str, str]]) -> object:
    """Alertmanager's older ``match`` / ``match_re`` maps, turned into ``matchers``.

    ``pairs`` maps each map's key to the matcher list it adds to and the operator.
    """
    if not isinstance(data, dict) or not any(key in data for key in pairs):
        return data
    data = dict(data)
    for key, (target, op) in pairs.items():
        found = data.pop(key, None)
        if found is None:
            continue
        if not isinstance(found, dict):
            raise ValueError(f"{key} must be a mapping of label names to values")
        current = data.get(target) or []
        parsed = list(_matchers(current) if all(isinstance(m, str) for m in current) else current)
        try:
            parsed += [Matcher(str(name), op, str(value)) for name, value in found.items()]  # type: ignore[arg-type]
        except MatcherError as error:
            raise ValueError(str(error)) from None
        data[target] = tuple(parsed)
    return data


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackConfig(_Strict):
    channel: str = ""
    """Channel for bot-token delivery; the default is ``VIGIL_SLACK_CHANNEL``."""
    bot_token: SecretStr | None = None
    webhook_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("webhook_url", "api_url")
    )
    """An incoming webhook (Alertmanager calls it ``api_url``)."""
    title: MessageTemplate | None = None
    """Header of the group's message instead of Vigil's headline (:mod:`alerting.templates`)."""
    text: MessageTemplate | None = None
    """A paragraph under the header (:mod:`alerting.templates`)."""
    send_resolved: bool = True
    base_url: str = ""
    """Web API base URL; the default is ``VIGIL_SLACK_BASE_URL``."""
    timeout: Duration | None = None
    """Seconds per request to Slack; the default is ``VIGIL_SLACK_TIMEOUT``."""
    min_interval: Duration = 1.0
    """Least time between two messages to the channel (Slack allows about one a second)."""
    ack_poll_interval: Duration = 30.0
    """How often open threads are read for an ``ack`` reply (bot-token mode only)."""

    @field_validator("bot_token", "webhook_url", mode="before")
    @classmethod
    def _secret_from_env(cls, value: object) -> object:
        return _expand_env(value) if isinstance(value, str) else value


class WebhookConfig(_Strict):
    url: SecretStr
    timeout: Duration = 10.0
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("url", mode="before")
    @classmethod
    def _url_from_env(cls, value: object) -> object:
        return _http_url(value, "a webhook")

    @field_validator("headers", mode="before")
    @classmethod
    def _headers_from_env(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: _expand_env(v) if isinstance(v, str) else v for k, v in value.items()}
        return value


class AlertmanagerConfig(_Strict):
    """A Prometheus Alertmanager that takes Vigil's alerts on ``/api/v2/alerts``."""

    url: str
    """Base URL, e.g. ``http://alertmanager:9093``; ``${NAME}`` is read from the environment."""
    timeout: Duration = 10.0

    @field_validator("url", mode="before")
    @classmethod
    def _url_from_env(cls, value: object) -> object:
        return _http_url(value, "an Alertmanager")


class KafkaConfig(_Strict):
    topic: str = Field(min_length=1)
    """Topic name; the worker's topic prefix is put in front of it."""


class ConsoleConfig(_Strict):
    """Print notifications on the terminal (the demo and ``vigil run`` use this)."""


class ReceiverConfig(_Strict):
    name: str = Field(min_length=1)
    slack: SlackConfig | None = None
    webhook: WebhookConfig | None = None
    kafka: KafkaConfig | None = None
    console: ConsoleConfig | None = None
    alertmanager: AlertmanagerConfig | None = None
    slack_configs: tuple[SlackConfig, ...] = ()
    """Alertmanager's spelling: any number of Slack integrations."""
    webhook_configs: tuple[WebhookConfig, ...] = ()
    """Alertmanager's spelling: any number of webhooks."""

    def integrations(self) -> dict[str, BaseModel]:
        """Each configured integration by its kind; each gets its own delivery queue."""
        candidates: dict[str, BaseModel | None] = {
            "slack": self.slack,
            "webhook": self.webhook,
            "kafka": self.kafka,
            "console": self.console,
            "alertmanager": self.alertmanager,
            **{f"slack.{i}": config for i, config in enumerate(self.slack_configs)},
            **{f"webhook.{i}": config for i, config in enumerate(self.webhook_configs)},
        }
        return {kind: config for kind, config in candidates.items() if config is not None}


class RouteConfig(_Strict):
    receiver: str | None = None
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(default=False, alias="continue")
    mute_time_intervals: tuple[str, ...] = ()
    """Named ``time_intervals`` during which this route sends nothing (not inherited)."""
    active_time_intervals: tuple[str, ...] = ()
    """Named ``time_intervals`` outside which this route sends nothing (not inherited)."""
    routes: tuple[RouteConfig, ...] = ()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _alertmanager_match(cls, data: object) -> object:
        return _from_match(data, {"match": ("matchers", "="), "match_re": ("matchers", "=~")})

    @field_validator("matchers", mode="before")
    @classmethod
    def _parse_matchers(cls, value: object) -> object:
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return _matchers(value)
        return value

    @field_validator("matchers")
    @classmethod
    def _known_labels(cls, value: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
        return _known(value)

    @field_validator("group_by")
    @classmethod
    def _known_group_by(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        return tuple(name if name == ALL_LABELS else _label(name) for name in value)

    @field_validator("group_interval", "repeat_interval")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be longer than zero")
        return value


class InhibitRuleConfig(_Strict):
    name: str = ""
    source_matchers: tuple[Matcher, ...] = Field(min_length=1)
    target_matchers: tuple[Matcher, ...] = Field(min_length=1)
    equal: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _alertmanager_match(cls, data: object) -> object:
        return _from_match(
            data,
            {
                "source_match": ("source_matchers", "="),
                "source_match_re": ("source_matchers", "=~"),
                "target_match": ("target_matchers", "="),
                "target_match_re": ("target_matchers", "=~"),
            },
        )

    @field_validator("source_matchers", "target_matchers", mode="before")
    @classmethod
    def _parse_matchers(cls, value: object) -> object:
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return _matchers(value)
        return value

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _known_labels(cls, value: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
        return _known(value)

    @field_validator("equal")
    @classmethod
    def _known_equal(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_label(name) for name in value)


class AnnotationConfig(_Strict):
    """Runbook and controls for the alerts the matchers select; the first match wins."""

    matchers: tuple[Matcher, ...] = Field(min_length=1)
    runbook_url: str = ""
    controls: tuple[str, ...] = ()

    @field_validator("matchers", mode="before")
    @classmethod
    def _parse_matchers(cls, value: object) -> object:
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return _matchers(value)
        return value

    @field_validator("matchers")
    @classmethod
    def _known_labels(cls, value: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
        return _known(value)


class TimeIntervalConfig(_Strict):
    """A named set of times (Alertmanager's ``time_intervals``; see :mod:`alerting.time_intervals`)."""

    name: str = Field(min_length=1)
    time_intervals: tuple[TimeSpec, ...] = Field(min_length=1)

    @field_validator("time_intervals", mode="before")
    @classmethod
    def _parse_specs(cls, value: object) -> object:
        if isinstance(value, list | tuple) and all(isinstance(v, dict) for v in value):
            return tuple(TimeSpec.parse(v) for v in value)
        return value

    def interval(self) -> TimeInterval:
        return TimeInterval(self.name, self.time_intervals)


class GlobalConfig(_Strict):
    resolve_timeout: Duration = 300.0
    """An alert with no new occurrence for this long is resolved."""
    runbook_url_template: str = ""
    """Runbook for alerts no annotation covers, e.g. ``https://runbooks.example/{rule}``;
    placeholders are label names."""
    min_severity: str | None = None
    """Overrides ``VIGIL_ALERT_MIN_SEVERITY`` when set."""

    @field_validator("min_severity")
    @classmethod
    def _known_severity(cls, value: str | None) -> str | None:
        return None if value is None else parse_severity(value)

    @field_validator("resolve_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be longer than zero")
        return value


class AlertingConfig(_Strict):
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    receivers: tuple[ReceiverConfig, ...] = Field(min_length=1)
    route: RouteConfig
    inhibit_rules: tuple[InhibitRuleConfig, ...] = ()
    annotations: tuple[AnnotationConfig, ...] = ()
    time_intervals: tuple[TimeIntervalConfig, ...] = ()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _references(self) -> AlertingConfig:
        names = [r.name for r in self.receivers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"receiver names must be unique: {', '.join(duplicates)} defined twice")
        if self.route.receiver is None:
            raise ValueError("route: the top-level route needs a receiver")
        if self.route.matchers:
            raise ValueError("route: the top-level route matches every alert; it takes no matchers")
        if self.route.mute_time_intervals or self.route.active_time_intervals:
            raise ValueError("route: the top-level route cannot be muted; put time intervals on its children")
        intervals = [t.name for t in self.time_intervals]
        for path, route in _walk(self.route, "route"):
            if route.receiver is not None and route.receiver not in names:
                raise ValueError(
                    f"{path}: receiver {route.receiver!r} is not defined (receivers: {', '.join(names)})"
                )
            for name in (*route.mute_time_intervals, *route.active_time_intervals):
                if name not in intervals:
                    defined = ", ".join(intervals) or "none"
                    raise ValueError(
                        f"{path}: time interval {name!r} is not defined (time_intervals: {defined})"
                    )
        return self

    def receiver(self, name: str) -> ReceiverConfig:
        return next(r for r in self.receivers if r.name == name)


def _walk(route: RouteConfig, path: str) -> list[tuple[str, RouteConfig]]:
    found = [(path, route)]
    for index, child in enumerate(route.routes):
        found.extend(_walk(child, f"{path}.routes[{index}]"))
    return found


def parse_config(document: object, source: str = "<config>") -> AlertingConfig:
    """Validate a parsed YAML document; raise :class:`ConfigError` naming every problem."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping (receivers, route, ...)")
    try:
        return AlertingConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def load_config(path: Path) -> AlertingConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the alerting configuration: {error.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return parse_config(document, str(path))


def _describe(error: ValidationError, source: str) -> str:
    found = error.errors(include_url=False, include_input=False)
    # "at least 1 item" about a list whose items were themselves invalid only repeats them
    found = [
        p
        for p in found
        if p["type"] != "too_short"
        or not any(o is not p and tuple(o["loc"][: len(p["loc"])]) == tuple(p["loc"]) for o in found)
    ]
    lines = [f"{source}: invalid alerting configuration ({len(found)} problem(s))"]
    for problem in found:
        where = _location(problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        lines.append(f"  {where or '(top level)'}: {message}")
    return "\n".join(lines)


def _location(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = {"global_": "global", "continue_": "continue"}.get(str(part), str(part))
            text += f".{name}" if text else name
    return text


def builtin_config(
    console: bool, slack: bool, repeat_interval: float = 4 * 3600.0, min_severity: str | None = None
) -> AlertingConfig:
    """The routing used when no file is configured: every alert to the console and,
    when ``VIGIL_SLACK_*`` is set, to Slack, grouped per stage, rule and model."""
    receivers: list[dict[str, Any]] = []
    if console:
        receivers.append({"name": "console", "console": {}})
    if slack:
        receivers.append({"name": "slack", "slack": {}})
    if not receivers:
        receivers.append({"name": "none"})
    children = [{"receiver": r["name"], "continue": True} for r in receivers[1:]]
    document = {
        "global": {"min_severity": min_severity},
        "receivers": receivers,
        "route": {
            "receiver": receivers[0]["name"],
            "group_by": ["stage", "rule", "model"],
            "group_wait": 10.0,
            "group_interval": 300.0,
            "repeat_interval": repeat_interval,
            "routes": [{"receiver": receivers[0]["name"], "continue": True}, *children] if children else [],
        },
    }
    return parse_config(document, "<built-in alerting configuration>")


class ConfigSource:
    """The routing file, loaded at start-up and re-read when it changes (hot reload).

    A file that fails validation on reload is reported and ignored: the manager
    keeps the last good configuration rather than going deaf.
    """

    def __init__(self, path: Path | None, fallback: AlertingConfig) -> None:
        self.path = path
        self.fallback = fallback
        self._stamp: tuple[float, int] | None = None
        self.current = self._load() if path is not None else fallback

    def _load(self) -> AlertingConfig:
        assert self.path is not None
        stamp = self._stat()
        config = load_config(self.path)
        self._stamp = stamp
        return config

    def _stat(self) -> tuple[float, int] | None:
        assert self.path is not None
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_mtime, info.st_size)

    def changed(self) -> AlertingConfig | None:
        """The new configuration if the file changed and is valid; raises ConfigError if invalid."""
        if self.path is None:
            return None
        stamp = self._stat()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        config = load_config(self.path)
        if config == self.current:
            return None
        self.current = config
        return config
