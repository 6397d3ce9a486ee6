"""Drift of every stream an inference event carries, per (model, key).

Keys are the event's features (numeric ones to the numeric detector, strings and
booleans to the categorical one), ``prediction.score`` and ``prediction.label``,
and the operational ``latency_ms``, ``tokens.prompt`` and ``tokens.completion``.
Operational streams only report increases (a faster model is not an incident).
Optionally (``outliers``), each event's feature vector is scored by an anomaly
detector and the share of outliers is watched for a rise.
"""

from __future__ import annotations

from array import array
from bisect import insort
from collections import deque
from datetime import datetime
from typing import Any

from detectors.base import AnomalyDetector, DriftDetector
from detectors.config import ModelConfig
from detectors.drift.model_day import ModelDay
from detectors.findings import Signal
from detectors.monitors.budget import Budget
from detectors.monitors.describe import change, since
from detectors.state import StateError, record, restore_as, savable, unplain
from schemas.events import InferenceEvent

TIMELINE = 512
"""Event times kept per model to say when a change began."""

OPERATIONS = {
    "latency_ms": "latency-spike",
    "tokens.prompt": "token-spike",
    "tokens.completion": "token-spike",
}


class _Outliers:
    """Anomaly score per event, a threshold learned from the first scores, a rate chart."""

    __slots__ = ("detector", "quantile", "rate", "scores", "target", "threshold")

    def __init__(self, detector: AnomalyDetector, rate: DriftDetector, target: int, quantile: float) -> None:
        self.detector = detector
        self.rate = rate
        self.scores: array[float] = array("d")
        self.target = target
        self.quantile = quantile
        self.threshold: float | None = None

    def update(self, features: dict[str, float]) -> bool:
        score = self.detector.score_one(features)
        self.detector.learn_one(features)
        if self.threshold is None:
            insort(self.scores, score)
            if len(self.scores) >= self.target:
                self.threshold = self.scores[int(self.quantile * (len(self.scores) - 1))]
                self.scores = array("d")
            return False
        self.rate.update(score > self.threshold)
        return self.rate.drift_detected


class _Model:
    __slots__ = ("categorical", "day", "events", "numeric", "outliers", "outputs", "timeline")

    def __init__(self) -> None:
        self.numeric: dict[str, DriftDetector | None] = {}
        self.categorical: dict[str, DriftDetector | None] = {}
        self.outputs: dict[str, DriftDetector] = {}
        self.outliers: _Outliers | None = None
        self.events = 0
        self.timeline: deque[datetime] = deque(maxlen=TIMELINE)
        # Whether today is a holiday is judged once for the model, from all of its numeric streams
        # (``ModelDay``): its state is theirs, so it is rebuilt, not saved.
        self.day = ModelDay()


class ModelStreams:
    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._models: dict[str, _Model] = {}

    @property
    def models(self) -> list[str]:
        return sorted(self._models)

    @property
    def keys(self) -> int:
        return sum(
            sum(d is not None for d in m.numeric.values())
            + sum(d is not None for d in m.categorical.values())
            + len(m.outputs)
            for m in self._models.values()
        )

    def export_model(self, model_id: str) -> dict[str, Any] | None:
        """The model's state as plain data (``detectors/state.py``); None when it has none.

        A key excluded by configuration (or beyond the budget) is kept as null, so it
        stays excluded; a detector without a state format is left out, so it starts
        over when the key is next seen.
        """
        model = self._models.get(model_id)
        if model is None:
            return None
        outliers = model.outliers
        return {
            "numeric": _records(model.numeric),
            "categorical": _records(model.categorical),
            "outputs": _records(model.outputs),
            "outliers": None
            if outliers is None or not (savable(outliers.detector) and savable(outliers.rate))
            else [
                record(outliers.detector),
                record(outliers.rate),
                outliers.scores[:],
                outliers.target,
                outliers.quantile,
                outliers.threshold,
            ],
            "events": model.events,
            "timeline": list(model.timeline),
        }

    def import_model(self, model_id: str, data: dict[str, Any]) -> None:
        """Install a model's state saved by ``export_model``; ``StateError`` when it is malformed."""
        model = _Model()
        try:
            model.numeric = _detectors(data["numeric"])
            model.categorical = _detectors(data["categorical"])
            outputs = _detectors(data["outputs"])
            model.outputs = {k: d for k, d in outputs.items() if d is not None}
            saved = data["outliers"]
            if saved is not None:
                detector, rate = restore_as(saved[0], AnomalyDetector), restore_as(saved[1], DriftDetector)
                model.outliers = _Outliers(detector, rate, int(saved[3]), float(saved[4]))
                model.outliers.scores = unplain(saved[2])
                model.outliers.threshold = saved[5]
            for stream in (*model.numeric.values(), *model.outputs.values()):
                model.day.join(stream)
            model.events = int(data["events"])
            model.timeline.extend(map(datetime.fromisoformat, data["timeline"]))
        except (KeyError, TypeError, ValueError, IndexError) as error:
            if isinstance(error, StateError):
                raise
            raise StateError(f"model streams of {model_id}: {type(error).__name__}: {error}") from None
        self._models[model_id] = model
        self.budget.used += 1 + sum(d is not None for d in model.numeric.values())
        self.budget.used += sum(d is not None for d in model.categorical.values()) + len(model.outputs)

    def observe(self, event: InferenceEvent, config: ModelConfig) -> list[Signal]:
        model = self._models.get(event.model_id)
        if model is None:
            if not self.budget.take():
                return []
            model = self._models[event.model_id] = _Model()
        model.events += 1
        model.timeline.append(event.ts)
        at = event.ts.timestamp()  # the event's own time: the phase of the daily and weekly cycle
        signals: list[Signal] = []
        numeric, categorical = model.numeric, model.categorical
        detector: DriftDetector | None
        for name, value in event.features.items():
            kind = value.__class__
            if kind is float or kind is int:
                try:
                    detector = numeric[name]
                except KeyError:
                    detector = numeric[name] = self._new(config, name, "numeric")
                    model.day.join(detector)
            else:
                try:
                    detector = categorical[name]
                except KeyError:
                    detector = categorical[name] = self._new(config, name, "categorical")
                value = str(value)
            if detector is None:
                continue  # excluded by configuration, or beyond the key budget
            detector.update(value, at)
            if detector._drift:  # the attribute, not the property: this loop runs per feature
                signals.append(self._signal("feature-drift", "feature", name, detector, model, event))
        if config.prediction.enabled or config.operations.enabled:
            self._observe_outputs(model, event, config, signals, at)
        if config.outliers.enabled:
            signals.extend(self._outliers(model, event, config))
        return signals

    def _observe_outputs(
        self, model: _Model, event: InferenceEvent, config: ModelConfig, signals: list[Signal], at: float
    ) -> None:
        if config.prediction.enabled:
            prediction = event.prediction
            if prediction.score is not None:
                self._output(model, event, config, signals, "prediction.score", prediction.score, at)
            if prediction.label is not None:
                self._output(model, event, config, signals, "prediction.label", str(prediction.label), at)
        if config.operations.enabled:
            self._output(model, event, config, signals, "latency_ms", event.latency_ms, at)
            tokens = event.tokens
            if tokens is not None:
                self._output(model, event, config, signals, "tokens.prompt", tokens.prompt, at)
                self._output(model, event, config, signals, "tokens.completion", tokens.completion, at)

    def _output(
        self,
        model: _Model,
        event: InferenceEvent,
        config: ModelConfig,
        signals: list[Signal],
        name: str,
        value: Any,
        at: float,
    ) -> None:
        detector = model.outputs.get(name)
        if detector is None:
            if not self.budget.take():
                return
            detector = model.outputs[name] = _output_detector(name, config)
            model.day.join(detector)
        detector.update(value, at)
        if detector._drift:
            signal = self._output_signal(name, detector, model, event)
            if signal is not None:
                signals.append(signal)

    def _new(self, config: ModelConfig, name: str, kind: str) -> DriftDetector | None:
        features = config.features
        if not features.tracks(name) or not self.budget.take():
            return None
        choice = features.numeric if kind == "numeric" else features.categorical
        detector = choice.build(config.seasonality)
        assert isinstance(detector, DriftDetector)
        return detector

    def _output_signal(
        self, name: str, detector: DriftDetector, model: _Model, event: InferenceEvent
    ) -> Signal | None:
        if name.startswith("prediction."):
            return self._signal("prediction-drift", "prediction", name, detector, model, event)
        before, after = detector.evidence["reference"], detector.evidence["window"]
        if after["mean"] <= before["mean"] and after.get("p95", 0.0) <= before.get("p95", 0.0):
            return None  # operational streams: only increases (of the level or the tail) are incidents
        return self._signal(OPERATIONS[name], "operation", name, detector, model, event)

    def _signal(
        self, rule: str, kind: str, name: str, detector: DriftDetector, model: _Model, event: InferenceEvent
    ) -> Signal:
        evidence = detector.evidence
        phrase, magnitude = change(evidence)
        when = since(evidence, model.timeline, detector.n_seen)
        started = f" since {when['ts']}" if when["ts"] else ""
        what = {"feature": "feature", "prediction": "output", "operation": "metric"}[kind]
        learnt = (
            f"profile of {int(evidence['reference']['n'])} hours"
            if "expected" in evidence
            else f"reference of {int(evidence['reference']['n'])} events"
        )
        message = (
            f"{what} {name!r} of {event.model_id} drifted: {phrase}; "
            f"{when['events_ago']} events in the new regime{started}, {learnt}"
        )
        return Signal(
            rule=rule,
            subject=name,
            severity="medium",
            message=message,
            details={
                "key": name,
                "kind": kind,
                "detector": getattr(detector, "registry_name", type(detector).__name__),
                "change": evidence["chart"],
                "magnitude": magnitude,
                "since": when,
                "reference": evidence["reference"],
                "window": evidence["window"],
                "statistic": evidence["statistic"],
                "events_seen": detector.n_seen,
                **({"expected": evidence["expected"]} if "expected" in evidence else {}),
            },
        )

    def _outliers(self, model: _Model, event: InferenceEvent, config: ModelConfig) -> list[Signal]:
        section = config.outliers
        if model.outliers is None:
            detector, rate = section.detector.build(), section.rate.build()
            assert isinstance(detector, AnomalyDetector)
            assert isinstance(rate, DriftDetector)
            model.outliers = _Outliers(detector, rate, section.calibration_events, section.quantile)
        numbers = {
            k: float(v)
            for k, v in event.features.items()
            if (v.__class__ is float or v.__class__ is int) and config.features.tracks(k)
        }
        if not numbers or not model.outliers.update(numbers):
            return []
        rate = model.outliers.rate
        if not rate.evidence["chart"].endswith("-up"):
            return []
        phrase, magnitude = change(rate.evidence)
        when = since(rate.evidence, model.timeline, rate.n_seen)
        return [
            Signal(
                rule="input-outliers",
                subject="features",
                severity="medium",
                message=f"unusual feature vectors of {event.model_id} rose: {phrase}",
                details={
                    "key": "features",
                    "kind": "outliers",
                    "threshold": model.outliers.threshold,
                    "change": rate.evidence["chart"],
                    "magnitude": magnitude,
                    "since": when,
                    "reference": rate.evidence["reference"],
                    "window": rate.evidence["window"],
                    "statistic": rate.evidence["statistic"],
                    "events_seen": rate.n_seen,
                },
            )
        ]


def _output_detector(name: str, config: ModelConfig) -> DriftDetector:
    if name == "prediction.label":
        choice = config.features.categorical
    elif name == "prediction.score":
        choice = config.features.numeric
    else:
        choice = config.operations.detector
    detector = choice.build(config.seasonality)
    assert isinstance(detector, DriftDetector)
    return detector


def _records(detectors: dict[str, DriftDetector] | dict[str, DriftDetector | None]) -> dict[str, Any]:
    return {k: None if d is None else record(d) for k, d in detectors.items() if d is None or savable(d)}


def _detectors(saved: dict[str, Any]) -> dict[str, DriftDetector | None]:
    return {name: None if data is None else restore_as(data, DriftDetector) for name, data in saved.items()}
