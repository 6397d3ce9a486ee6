"""Bias per protected segment: positive-rate and error-rate disparity, sudden shifts.

For each model and each protected attribute of the events' ``segment`` map (say
``sex``), every value (``f``, ``m``) is a group with exponentially weighted counts
(memory ``window`` events of the model) of predictions, positive predictions,
labelled outcomes and errors. Every ``CHECK_EVERY`` events the groups with at
least ``min_samples`` (weighted) predictions are compared:

- ``bias-disparity`` (positive rate): lowest / highest positive rate under
  ``four_fifths`` (the four-fifths rule of US employment practice, a common
  screen for disparate impact) and a gap that chance does not explain
  (two-proportion z-score of at least ``min_z``: small groups are noisy). The
  attribute stays in alarm, silent, until the ratio is back above ``recover``.
- ``bias-disparity`` (error rate): highest / lowest error rate above
  ``max_error_ratio`` and apart by at least ``min_error_gap``.
- ``bias-shift``: each group's positive rate also runs through a two-sided rate
  detector against the group's own reference. A detection is reported only when
  the other groups did not move the same way (less than half as far): a shift of
  every group is prediction drift, not bias, and is reported as such elsewhere.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.base import DriftDetector
from detectors.config import BiasConfig, ModelConfig
from detectors.findings import Signal
from detectors.monitors.budget import Budget
from detectors.monitors.labels import label_key
from detectors.monitors.performance import Outcome
from detectors.state import StateError, record, restore_as, savable
from schemas.events import FeedbackEvent, InferenceEvent

CHECK_EVERY = 50
"""Events of a model between disparity checks (a check walks every group)."""
MAX_ATTRIBUTES = 16


class _Group:
    __slots__ = ("errors", "labelled", "n", "positive", "shift", "tick")

    def __init__(self, shift: DriftDetector) -> None:
        self.n = self.positive = self.labelled = self.errors = 0.0
        self.tick = 0
        self.shift = shift

    def decay(self, tick: int, keep: float) -> None:
        if tick != self.tick:
            factor = keep ** (tick - self.tick)
            self.n *= factor
            self.positive *= factor
            self.labelled *= factor
            self.errors *= factor
            self.tick = tick

    @property
    def positive_rate(self) -> float:
        return self.positive / self.n if self.n else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.labelled if self.labelled else 0.0


class _Attribute:
    """Groups of one attribute and its alarm state.

    ``rate_alarm``: a positive-rate finding (shift or disparity) is outstanding, so
    no other is raised until the rates are back within ``recover``;
    ``breach_reported``: that finding already said the four-fifths rule is breached;
    ``alarm_tick``: when it was raised (the windowed rates lag a sudden shift by up
    to a window, so they cannot clear the alarm before a window has passed).
    """

    __slots__ = ("alarm_tick", "breach_reported", "error_alarm", "groups", "rate_alarm")

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {}
        self.rate_alarm = False
        self.alarm_tick = 0
        self.breach_reported = False
        self.error_alarm = False


class _Model:
    __slots__ = ("attributes", "tick")

    def __init__(self) -> None:
        self.attributes: dict[str, _Attribute] = {}
        self.tick = 0


class Bias:
    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._models: dict[str, _Model] = {}

    @property
    def keys(self) -> int:
        return sum(len(a.groups) for m in self._models.values() for a in m.attributes.values())

    def export_model(self, model_id: str) -> dict[str, Any] | None:
        """The model's groups as plain data: windowed counts, alarm states, shift detectors.

        A group whose shift detector has no state format is left out: it starts over
        when its segment value is next seen.
        """
        model = self._models.get(model_id)
        if model is None:
            return None
        return {
            "tick": model.tick,
            "attributes": {
                name: [
                    attribute.rate_alarm,
                    attribute.alarm_tick,
                    attribute.breach_reported,
                    attribute.error_alarm,
                    {
                        value: [g.n, g.positive, g.labelled, g.errors, g.tick, record(g.shift)]
                        for value, g in attribute.groups.items()
                        if savable(g.shift)
                    },
                ]
                for name, attribute in model.attributes.items()
            },
        }

    def import_model(self, model_id: str, data: dict[str, Any]) -> None:
        """Install a model's groups saved by ``export_model``; ``StateError`` when malformed."""
        model = _Model()
        try:
            model.tick = int(data["tick"])
            for name, (rate_alarm, alarm_tick, breach, error_alarm, groups) in data["attributes"].items():
                attribute = model.attributes[name] = _Attribute()
                attribute.rate_alarm, attribute.alarm_tick = bool(rate_alarm), int(alarm_tick)
                attribute.breach_reported, attribute.error_alarm = bool(breach), bool(error_alarm)
                for value, (n, positive, labelled, errors, tick, shift) in groups.items():
                    group = attribute.groups[value] = _Group(restore_as(shift, DriftDetector))
                    group.n, group.positive, group.labelled, group.errors = n, positive, labelled, errors
                    group.tick = int(tick)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, StateError):
                raise
            raise StateError(f"bias state of {model_id}: {type(error).__name__}: {error}") from None
        self._models[model_id] = model
        self.budget.used += sum(len(a.groups) for a in model.attributes.values())

    def rates(self, model_id: str, attribute: str) -> dict[str, float]:
        """Current windowed positive rate per group (for tests and diagnostics)."""
        model = self._models.get(model_id)
        groups = model.attributes[attribute].groups if model and attribute in model.attributes else {}
        return {value: group.positive_rate for value, group in groups.items()}

    def observe(self, event: InferenceEvent, config: ModelConfig) -> list[Signal]:
        section = config.bias
        if not event.segment:
            return []
        positive = _positive(event, section)
        if positive is None:
            return []
        model = self._models.get(event.model_id)
        if model is None:
            model = self._models[event.model_id] = _Model()
        model.tick += 1
        keep = 1.0 - 1.0 / section.window
        signals: list[Signal] = []
        for attribute, value in event.segment.items():
            group = self._group(model, attribute, value, section)
            if group is None:
                continue
            group.decay(model.tick, keep)
            group.n += 1.0
            group.positive += positive
            group.shift.update(positive)
            if group.shift.drift_detected:
                signal = self._shift_signal(event, model, attribute, value, section)
                if signal is not None:
                    signals.append(signal)
        if model.tick % CHECK_EVERY == 0:
            for attribute, state in model.attributes.items():
                signal = self._check_rates(event, model, attribute, state, section, keep)
                if signal is not None:
                    signals.append(signal)
        return signals

    def observe_outcome(self, event: FeedbackEvent, outcome: Outcome, config: ModelConfig) -> list[Signal]:
        section = config.bias
        model = self._models.get(event.model_id)
        if model is None:
            return []
        keep = 1.0 - 1.0 / section.window
        signals: list[Signal] = []
        for attribute, value in outcome.segment:
            state = model.attributes.get(attribute)
            group = state.groups.get(value) if state else None
            if state is None or group is None:
                continue
            group.decay(model.tick, keep)
            group.labelled += 1.0
            group.errors += 0.0 if outcome.correct else 1.0
            signal = self._check_errors(event, model, attribute, state, section, keep)
            if signal is not None:
                signals.append(signal)
        return signals

    def _group(self, model: _Model, attribute: str, value: str, section: BiasConfig) -> _Group | None:
        if section.attributes is not None and attribute not in section.attributes:
            return None
        state = model.attributes.get(attribute)
        if state is None:
            if len(model.attributes) >= MAX_ATTRIBUTES:
                return None
            state = model.attributes[attribute] = _Attribute()
        group = state.groups.get(value)
        if group is None:
            if len(state.groups) >= section.max_groups or not self.budget.take():
                return None
            shift = section.shift.build()
            assert isinstance(shift, DriftDetector)
            group = state.groups[value] = _Group(shift)
            group.tick = model.tick
        return group

    def _eligible(
        self, model: _Model, state: _Attribute, keep: float, minimum: float, labelled: bool
    ) -> dict[str, _Group]:
        out = {}
        for value, group in state.groups.items():
            group.decay(model.tick, keep)
            if (group.labelled if labelled else group.n) >= minimum:
                out[value] = group
        return out

    def _check_rates(
        self,
        event: InferenceEvent,
        model: _Model,
        attribute: str,
        state: _Attribute,
        section: BiasConfig,
        keep: float,
    ) -> Signal | None:
        groups = self._eligible(model, state, keep, section.min_samples, labelled=False)
        if len(groups) < 2:
            return None
        rates = {value: group.positive_rate for value, group in groups.items()}
        low = min(rates, key=lambda v: rates[v])
        high = max(rates, key=lambda v: rates[v])
        if rates[high] <= 0.0:
            return None
        ratio = rates[low] / rates[high]
        if state.rate_alarm and ratio >= section.recover and model.tick - state.alarm_tick >= section.window:
            state.rate_alarm = state.breach_reported = False
            return None
        if (
            state.breach_reported
            or ratio >= section.four_fifths
            or _z(groups[high], groups[low]) < section.min_z
        ):
            return None
        state.rate_alarm = state.breach_reported = True
        state.alarm_tick = model.tick
        return Signal(
            rule="bias-disparity",
            subject=f"{attribute}:positive-rate",
            severity="high",
            message=(
                f"positive rate of {event.model_id} for {attribute}={low} is {rates[low]:.1%} against "
                f"{rates[high]:.1%} for {attribute}={high}: ratio {ratio:.2f} is under the "
                f"four-fifths threshold {section.four_fifths}"
            ),
            details={
                "attribute": attribute,
                "metric": "positive_rate",
                "change": "disparity",
                "magnitude": {"ratio": ratio, "threshold": section.four_fifths},
                "lowest": {"group": low, "rate": rates[low]},
                "highest": {"group": high, "rate": rates[high]},
                "since": {"ts": event.ts.isoformat(), "events_ago": 0, "located": False},
                "window": {
                    value: {"rate": g.positive_rate, "weighted_n": g.n} for value, g in groups.items()
                },
                "window_events": section.window,
            },
        )

    def _check_errors(
        self,
        event: FeedbackEvent,
        model: _Model,
        attribute: str,
        state: _Attribute,
        section: BiasConfig,
        keep: float,
    ) -> Signal | None:
        groups = self._eligible(model, state, keep, section.min_samples, labelled=True)
        if len(groups) < 2:
            return None
        rates = {value: group.error_rate for value, group in groups.items()}
        low = min(rates, key=lambda v: rates[v])
        high = max(rates, key=lambda v: rates[v])
        gap = rates[high] - rates[low]
        ratio = rates[high] / rates[low] if rates[low] > 0 else float("inf")
        breached = ratio > section.max_error_ratio and gap >= section.min_error_gap
        if state.error_alarm:
            if not breached:
                state.error_alarm = False
            return None
        if not breached:
            return None
        state.error_alarm = True
        return Signal(
            rule="bias-disparity",
            subject=f"{attribute}:error-rate",
            severity="high",
            message=(
                f"error rate of {event.model_id} for {attribute}={high} is {rates[high]:.1%} against "
                f"{rates[low]:.1%} for {attribute}={low} (x{ratio:.2f}, limit x{section.max_error_ratio})"
            ),
            details={
                "attribute": attribute,
                "metric": "error_rate",
                "change": "disparity",
                "magnitude": {"ratio": ratio, "gap": gap, "threshold": section.max_error_ratio},
                "lowest": {"group": low, "rate": rates[low]},
                "highest": {"group": high, "rate": rates[high]},
                "since": {"ts": event.ts.isoformat(), "events_ago": 0, "located": False},
                "window": {
                    value: {"rate": g.error_rate, "weighted_n": g.labelled} for value, g in groups.items()
                },
                "window_events": section.window,
            },
        )

    def _shift_signal(
        self, event: InferenceEvent, model: _Model, attribute: str, value: str, section: BiasConfig
    ) -> Signal | None:
        state = model.attributes[attribute]
        if state.rate_alarm:
            return None  # this attribute's incident is already reported
        group = state.groups[value]
        evidence = group.shift.evidence
        before, after = evidence["reference"]["rate"], evidence["window"]["rate"]
        references = {v: _reference_rate(g) for v, g in state.groups.items() if v != value}
        others = {v: g for v, g in state.groups.items() if references.get(v) is not None}
        if not others:
            return None
        weight = sum(g.n for g in others.values()) or 1.0
        others_now = sum(g.positive for g in others.values()) / weight
        others_before = sum((references[v] or 0.0) * g.n for v, g in others.items()) / weight
        moved, others_moved = after - before, others_now - others_before
        if moved * others_moved > 0 and abs(others_moved) >= 0.5 * abs(moved):
            return None  # everyone moved: prediction drift, not a segment's
        recent_ratio = min(after, others_now) / max(after, others_now) if max(after, others_now) > 0 else 1.0
        breached = recent_ratio < section.four_fifths
        state.rate_alarm, state.breach_reported, state.alarm_tick = True, breached, model.tick
        verdict = f"; ratio {recent_ratio:.2f} breaches the four-fifths rule" if breached else ""
        when: dict[str, object] = {
            "events_ago": int(evidence["events_since_change"]),
            "located": True,
            "ts": None,
        }
        return Signal(
            rule="bias-shift",
            subject=f"{attribute}={value}",
            severity="high",
            message=(
                f"positive rate of {event.model_id} for {attribute}={value} moved "
                f"{before:.1%} -> {after:.1%} "
                f"over its last {evidence['window']['n']} events while the other groups stayed near "
                f"{others_before:.1%} -> {others_now:.1%}{verdict}"
            ),
            details={
                "attribute": attribute,
                "group": value,
                "metric": "positive_rate",
                "change": evidence["chart"],
                "magnitude": {
                    "rate_before": before,
                    "rate_after": after,
                    "others_before": others_before,
                    "others_now": others_now,
                    "recent_ratio": recent_ratio,
                    "four_fifths_breached": breached,
                },
                "since": when,
                "reference": evidence["reference"],
                "window": evidence["window"],
                "statistic": evidence["statistic"],
            },
        )


def _z(high: _Group, low: _Group) -> float:
    """Two-proportion z-score of the gap between two groups' positive rates."""
    pooled = (high.positive + low.positive) / (high.n + low.n)
    spread = math.sqrt(pooled * (1.0 - pooled) * (1.0 / high.n + 1.0 / low.n))
    return (high.positive_rate - low.positive_rate) / spread if spread > 0 else math.inf


def _reference_rate(group: _Group) -> float | None:
    rate = getattr(group.shift, "reference_rate", None)
    return rate if isinstance(rate, float) else None


def _positive(event: InferenceEvent, section: BiasConfig) -> int | None:
    label = event.prediction.label
    if label is not None:
        return 1 if label_key(label) in section.positive_labels else 0
    score = event.prediction.score
    if score is not None:
        return 1 if score >= section.score_threshold else 0
    return None
