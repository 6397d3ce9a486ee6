"""Title and text templates for receivers, written as in Alertmanager's ``slack_configs``.

An operator's Alertmanager templates are Go templates over the notification data;
Vigil evaluates them with :mod:`alerting.go_template` over the same data model, so a
``slack_configs`` entry copied from an Alertmanager file renders the same words:

- ``.Status`` (``firing`` or ``resolved``), ``.Receiver``, ``.GroupKey``;
- ``.GroupLabels``, ``.CommonLabels`` (labels every alert of the group shares),
  ``.CommonAnnotations`` (``summary``, ``description``, ``runbook_url``); each a map
  with ``.SortedPairs``, ``.Names``, ``.Values`` and ``.Remove <names>``;
- ``.Alerts`` (and ``.Alerts.Firing`` / ``.Alerts.Resolved``), each with ``.Status``,
  ``.Labels``, ``.Annotations``, ``.StartsAt``, ``.EndsAt``, ``.Fingerprint``.

Labels are Vigil's (``alertname`` is the rule); a label or field Vigil does not have
is refused when the routing file is loaded, in every branch of the template. The
Slack templates Alertmanager ships (``slack.default.title`` and the others it defines
without its external URL) can be named with ``{{ template "slack.default.title" . }}``.

>>> note = MessageTemplate.parse('{{ .Status | toUpper }}: {{ .CommonLabels.alertname }}')
>>> note.source
'{{ .Status | toUpper }}: {{ .CommonLabels.alertname }}'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

from alerting.go_template import Template, TemplateError
from alerting.model import LABEL_NAMES
from alerting.notifications import AlertSnapshot, Notification

_ANNOTATIONS = ("summary", "description", "runbook_url")
_LABELS = (*LABEL_NAMES, "alertname")
_FIELDS: dict[str, dict[str, str]] = {
    "notification": {
        "Status": "string",
        "Receiver": "string",
        "GroupKey": "string",
        "GroupLabels": "labels",
        "CommonLabels": "labels",
        "CommonAnnotations": "annotations",
        "Alerts": "alerts",
    },
    "alerts": {"Firing": "alerts", "Resolved": "alerts"},
    "alert": {
        "Status": "string",
        "Labels": "labels",
        "Annotations": "annotations",
        "StartsAt": "string",
        "EndsAt": "string",
        "Fingerprint": "string",
    },
    "pairs": {"Names": "strings", "Values": "strings"},
    "pair": {"Name": "string", "Value": "string"},
}
_MAP_KEYS = {"labels": _LABELS, "annotations": _ANNOTATIONS}
_MAP_FIELDS = {"SortedPairs": "pairs", "Names": "strings", "Values": "strings"}
_ELEMENTS = {
    "alerts": "alert",
    "pairs": "pair",
    "strings": "string",
    "labels": "string",
    "annotations": "string",
}


class NotificationSchema:
    """What a template may name, by kind of value (:class:`alerting.go_template.Schema`)."""

    def field(self, kind: str, name: str) -> str:
        if kind in _MAP_KEYS:
            if name in _MAP_FIELDS:
                return _MAP_FIELDS[name]
            if name == "Remove":
                raise TemplateError(
                    ".Remove takes the names to remove, e.g. .CommonLabels.Remove .GroupLabels.Names"
                )
            if name not in _MAP_KEYS[kind]:
                known = ", ".join(_MAP_KEYS[kind])
                raise TemplateError(
                    f"no {'label' if kind == 'labels' else 'annotation'} {name!r} (known: {known})"
                )
            return "string"
        fields = _FIELDS.get(kind)
        if fields is None:
            raise TemplateError(f".{name}: {_article(kind)} has no fields")
        if name not in fields:
            raise TemplateError(f"no .{name} on {_article(kind)} (known: {', '.join(fields)})")
        return fields[name]

    def method(self, kind: str, name: str, args: Sequence[str]) -> str:
        if kind in _MAP_KEYS and name == "Remove" and list(args) == ["strings"]:
            return kind
        raise TemplateError(f"no method .{name} taking {', '.join(args)} on {_article(kind)}")

    def element(self, kind: str) -> str:
        if kind not in _ELEMENTS:
            raise TemplateError(f"cannot range over {_article(kind)}")
        return _ELEMENTS[kind]


_DESCRIBED = {
    "notification": "the notification",
    "alerts": "a list of alerts",
    "alert": "an alert",
    "labels": "a label map",
    "annotations": "an annotation map",
    "pairs": "a list of pairs",
    "pair": "a pair",
    "strings": "a list of strings",
    "string": "a string",
    "int": "a number",
    "bool": "a boolean",
}


def _article(kind: str) -> str:
    return _DESCRIBED.get(kind, "a value of unknown type")


class _Record(dict[str, Any]):
    """A struct of the data: a missing field is empty, as with ``missingkey=zero``."""

    def field(self, name: str) -> Any:
        return self.get(name, "")


class _Map:
    """Alertmanager's ``KV``: a label or annotation map with its helper methods."""

    def __init__(self, items: dict[str, str]) -> None:
        self._items = dict(sorted(items.items()))

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> list[str]:
        return list(self._items.values())

    def field(self, name: str) -> Any:
        if name == "SortedPairs":
            return _Pairs(_Record(Name=k, Value=v) for k, v in self._items.items())
        if name == "Names":
            return list(self._items)
        if name == "Values":
            return self.values()
        return self._items.get(name, "")

    def call(self, name: str, args: Sequence[Any]) -> _Map:
        removed = set(args[0])
        return _Map({k: v for k, v in self._items.items() if k not in removed})

    def as_text(self) -> str:
        return "map[" + " ".join(f"{k}:{v}" for k, v in self._items.items()) + "]"


class _Pairs(list[_Record]):
    def field(self, name: str) -> Any:
        return [pair[name[:-1]] for pair in self]  # Names -> Name, Values -> Value


class _Alerts(list[_Record]):
    def field(self, name: str) -> Any:
        wanted = "firing" if name == "Firing" else "resolved"
        return _Alerts(a for a in self if a["Status"] == wanted)


def template_data(notification: Notification) -> _Record:
    """The data Alertmanager gives its templates, from one notification."""
    alerts = notification.alerts
    common = dict(alerts[0].labels) if alerts else {}
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert.labels.get(k) == v}
    annotations: dict[str, str] = {}
    for name in _ANNOTATIONS:
        shown = {_annotations(a)[name] for a in alerts}
        if len(shown) == 1:
            annotations[name] = shown.pop()
    return _Record(
        Status=notification.status,
        Receiver=notification.receiver,
        GroupKey=notification.group_id,
        GroupLabels=_Map(_with_alertname(notification.group_labels)),
        CommonLabels=_Map(_with_alertname(common)),
        CommonAnnotations=_Map(annotations),
        Alerts=_Alerts(_alert(a, notification) for a in alerts),
    )


def _alert(alert: AlertSnapshot, notification: Notification) -> _Record:
    resolved = alert.state == "resolved" or notification.kind == "resolved"
    return _Record(
        Status="resolved" if resolved else "firing",
        Labels=_Map(_with_alertname(alert.labels)),
        Annotations=_Map(_annotations(alert)),
        StartsAt=alert.first_seen.isoformat(),
        EndsAt=alert.last_seen.isoformat() if resolved else "",
        Fingerprint=alert.fingerprint,
    )


def _annotations(alert: AlertSnapshot) -> dict[str, str]:
    return {"summary": alert.title, "description": alert.summary, "runbook_url": alert.runbook_url}


def _with_alertname(labels: dict[str, str]) -> dict[str, str]:
    return {**labels, "alertname": labels["rule"]} if "rule" in labels else dict(labels)


_SCHEMA = NotificationSchema()
_SHIPPED_SOURCES = {
    # Alertmanager's default.tmpl, less what needs its external URL.
    "__subject": (
        '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] '
        '{{ .GroupLabels.SortedPairs.Values | join " " }} '
        "{{ if gt (len .CommonLabels) (len .GroupLabels) }}"
        '({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join " " }}{{ end }})'
        "{{ end }}"
    ),
    "slack.default.title": '{{ template "__subject" . }}',
    "slack.default.fallback": '{{ template "slack.default.title" . }}',
    "slack.default.username": "Vigil",
    "slack.default.pretext": "",
    "slack.default.text": "",
    "slack.default.footer": "",
}


def _shipped() -> dict[str, Template]:
    templates: dict[str, Template] = {}
    for name, source in _SHIPPED_SOURCES.items():  # each names only those before it
        templates[name] = Template(source, _SCHEMA, "notification", templates)
    return templates


SHIPPED = _shipped()


class MessageTemplate:
    """An operator's title or text template, checked against the notification data."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._template = Template(source, _SCHEMA, "notification", SHIPPED)

    @classmethod
    def parse(cls, source: str) -> MessageTemplate:
        """Raise ``ValueError`` (a ``TemplateError``) naming the first problem."""
        return cls(source)

    def render(self, notification: Notification) -> str:
        return self._template.render(template_data(notification))

    @classmethod
    def _coerce(cls, value: object) -> MessageTemplate:
        if isinstance(value, MessageTemplate):
            return value
        if not isinstance(value, str):
            raise ValueError(f"a template is text, not {type(value).__name__}")
        return cls.parse(value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """In a configuration model: read from its source text, written back as that text."""
        return core_schema.no_info_plain_validator_function(
            cls._coerce,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda t: t.source),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MessageTemplate) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __repr__(self) -> str:
        return f"MessageTemplate({self.source!r})"
