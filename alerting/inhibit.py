"""Inhibition: while a source alert fires, matching target alerts stay quiet.

The typical rule: a quarantined model's drift alerts say nothing the quarantine
alert has not already said, so ``source: rule=model-quarantined``,
``target: stage=detector``, ``equal: [model]``. Inhibited alerts are kept and
recorded with the rule that held them back; they notify again once the source
resolves. An alert never inhibits itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from alerting.config import InhibitRuleConfig
from alerting.matchers import Matcher, match_all
from alerting.model import Alert


@dataclass(frozen=True)
class InhibitRule:
    name: str
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def from_config(cls, config: InhibitRuleConfig, index: int) -> InhibitRule:
        return cls(
            config.name or f"inhibit_rules[{index}]",
            config.source_matchers,
            config.target_matchers,
            config.equal,
        )

    def key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(labels.get(name, "") for name in self.equal)


class Inhibitor:
    """Answers "is this alert inhibited, and by which rule" for one set of live alerts."""

    def __init__(self, rules: Iterable[InhibitRule], sources: Iterable[Alert]) -> None:
        self.rules = tuple(rules)
        self._sources: list[dict[tuple[str, ...], set[str]]] = []
        live = [a for a in sources if a.state != "resolved"]
        for rule in self.rules:
            index: dict[tuple[str, ...], set[str]] = {}
            for alert in live:
                if match_all(rule.source, alert.labels):
                    index.setdefault(rule.key(alert.labels), set()).add(alert.fingerprint)
            self._sources.append(index)

    def inhibiting_rule(self, alert: Alert) -> str:
        """The first rule that inhibits ``alert``, or ``""``."""
        for rule, index in zip(self.rules, self._sources, strict=True):
            if not match_all(rule.target, alert.labels):
                continue
            sources = index.get(rule.key(alert.labels), set())
            if sources - {alert.fingerprint}:
                return rule.name
        return ""
