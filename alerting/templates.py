"""Title and text templates for receivers, in the subset of Alertmanager's syntax that fits.

Alertmanager's ``slack_configs`` take Go templates over the notification data. Vigil
accepts the field references those templates are mostly made of, and refuses
anything else at validation (``range``, ``if``, pipes, functions) rather than sending
the template text to Slack:

- ``{{ .Status }}`` (``firing`` or ``resolved``), ``{{ .Receiver }}``, ``{{ .GroupKey }}``;
- ``{{ .GroupLabels.<label> }}``, ``{{ .CommonLabels.<label> }}`` (labels every alert
  of the group shares; ``alertname`` is the rule);
- ``{{ .CommonAnnotations.summary }}``, ``.description``, ``.runbook_url``.

>>> MessageTemplate.parse("{{ .CommonLabels.alertname }} is {{ .Status }}").fields
(('CommonLabels', 'alertname'), ('Status', ''))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from alerting.model import LABEL_NAMES
from alerting.notifications import Notification

_REFERENCE = re.compile(r"\{\{-?\s*\.(\w+)(?:\.(\w+))?\s*-?\}\}")
_ANY_ACTION = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_PLAIN = {"Status", "Receiver", "GroupKey"}
_MAPS = {"GroupLabels", "CommonLabels", "CommonAnnotations"}
_ANNOTATIONS = ("summary", "description", "runbook_url")
_LABELS = (*LABEL_NAMES, "alertname")


@dataclass(frozen=True)
class MessageTemplate:
    text: str
    fields: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> MessageTemplate:
        """Raise ``ValueError`` naming the first construct Vigil does not render."""
        fields = []
        for action in _ANY_ACTION.finditer(text):
            found = _REFERENCE.fullmatch(action.group(0))
            if found is None:
                raise ValueError(
                    f"template action {action.group(0)!r} is not supported (only field references)"
                )
            name, key = found.group(1), found.group(2) or ""
            if name in _PLAIN and not key:
                fields.append((name, ""))
            elif name in _MAPS and key:
                allowed = _ANNOTATIONS if name == "CommonAnnotations" else _LABELS
                if key not in allowed:
                    raise ValueError(
                        f"{action.group(0)!r}: no {key!r} in .{name} (known: {', '.join(allowed)})"
                    )
                fields.append((name, key))
            else:
                raise ValueError(f"template field {action.group(0)!r} is not one Vigil provides")
        return cls(text, tuple(fields))

    def render(self, notification: Notification) -> str:
        values = _values(notification)
        return _REFERENCE.sub(lambda m: values.get((m.group(1), m.group(2) or ""), ""), self.text)


def _values(notification: Notification) -> dict[tuple[str, str], str]:
    alerts = notification.alerts
    common = dict(alerts[0].labels) if alerts else {}
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert.labels.get(k) == v}
    if "rule" in common:
        common["alertname"] = common["rule"]
    group = dict(notification.group_labels)
    if "rule" in group:
        group["alertname"] = group["rule"]
    annotations: dict[str, str] = {}
    for name, pick in (("summary", "title"), ("description", "summary"), ("runbook_url", "runbook_url")):
        shown = {getattr(a, pick) for a in alerts}
        if len(shown) == 1:
            annotations[name] = shown.pop()
    values = {
        ("Status", ""): notification.status,
        ("Receiver", ""): notification.receiver,
        ("GroupKey", ""): notification.group_id,
    }
    values.update({("CommonLabels", k): v for k, v in common.items()})
    values.update({("GroupLabels", k): v for k, v in group.items()})
    values.update({("CommonAnnotations", k): v for k, v in annotations.items()})
    return values
