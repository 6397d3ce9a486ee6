"""What an SRE needs next to an alert: the runbook, the controls, the evidence query.

The runbook comes from, in order: the first matching ``annotations`` entry of the
configuration, then ``global.runbook_url_template`` when the operator set one (the
runbooks an organisation keeps are where its on-call looks, whatever a shipped
policy names), then what the finding itself carries (policies' ``@runbook``).
Controls come from the matching entry, else from the finding's ``details``. The
evidence query selects every occurrence of the alert from ``findings_unique`` since
it started, ready to paste into ``vigil sql``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from alerting.config import AlertingConfig
from alerting.matchers import match_all

_COLUMNS = {"stage": "stage", "rule": "detector_or_rule", "model": "model_id", "principal": "principal_id"}
_SUBJECT_COLUMNS = {"resource": "concat(resource_kind, '/', resource_id)", "key": "key_id"}
"""Labels only some alerts carry: a condition when the alert has one."""


def sql_string(value: str) -> str:
    """A ClickHouse string literal.

    >>> sql_string("it's")
    "'it\\\\'s'"
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def evidence_query(labels: Mapping[str, str], since: datetime) -> str:
    """Every occurrence of the alert with these labels since ``since``."""
    about_model = labels.get("stage") == "detector" and not labels.get("principal")
    conditions = [
        f"{column} = {sql_string(labels.get(name, ''))}"
        for name, column in _COLUMNS.items()
        if not (about_model and name == "principal")  # a model's drift, whoever called it
    ]
    conditions += [
        f"{column} = {sql_string(labels[name])}"
        for name, column in _SUBJECT_COLUMNS.items()
        if labels.get(name)
    ]
    stamp = since.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    conditions.append(f"ts >= '{stamp}'")
    return (
        "SELECT ts, event_id, principal_id, severity, message, details FROM findings_unique WHERE "
        + " AND ".join(conditions)
        + " ORDER BY ts"
    )


@dataclass(frozen=True)
class Annotations:
    runbook_url: str
    controls: tuple[str, ...]


def annotate(config: AlertingConfig, labels: Mapping[str, str], details: Mapping[str, object]) -> Annotations:
    for entry in config.annotations:
        if match_all(entry.matchers, labels):
            controls = entry.controls or _strings(details.get("controls"))
            return Annotations(entry.runbook_url or _first(details.get("runbooks")), controls)
    runbook = _template(config.global_.runbook_url_template, labels) or _first(details.get("runbooks"))
    return Annotations(runbook, _strings(details.get("controls")))


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if v)
    return ()


def _first(value: object) -> str:
    found = _strings(value)
    return found[0] if found else ""


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def _template(template: str, labels: Mapping[str, str]) -> str:
    """Labels enter the URL percent-encoded: a label cannot add a path, a query or a second link."""
    if not template:
        return ""
    return template.format_map(_Blank({k: quote(v, safe="") for k, v in labels.items()}))
