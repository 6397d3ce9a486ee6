"""Performance drift: feedback labels joined to their predictions by ``request_id``.

Predictions wait in a per-model, insertion-ordered table bounded in entries
(``max_pending``), in bytes (``max_pending_bytes``, each entry's memory estimated
from its request id, label and segment: long ids or wide segments cannot grow it
past the budget) and in age (``max_pending_age_seconds``, by event time, checked
every ``AGE_CHECK_EVERY`` predictions); the oldest leave first, counted as
``expired``. A feedback event whose prediction is
still there yields one labelled outcome: correct or not (fed to the error-rate
detector, 1 = error) and, for binary labels with a score, the residual
``label - score`` (fed to the calibration detector). Feedback for an unknown or
expired request is counted, not guessed. Outcomes are placed in the daily and weekly
cycle at the time of the *prediction*: an error rate follows the traffic the model
served, whenever its labels arrive.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detectors.base import DriftDetector
from detectors.config import ModelConfig
from detectors.findings import Signal
from detectors.monitors.budget import Budget
from detectors.monitors.describe import change, since
from detectors.monitors.labels import as_binary, label_key
from detectors.state import StateError, record, restore_as, savable
from schemas.events import FeedbackEvent, InferenceEvent

TIMELINE = 512
ENTRY_BYTES = 300
"""Memory of a waiting prediction besides its strings, measured with ``sys.getsizeof``
on CPython 3.11: the table's slot and node, the key, the tuple, a float, a label."""
PAIR_BYTES = 150
"""The same for each (key, value) pair of its segment, besides the strings' characters."""
AGE_CHECK_EVERY = 64
"""Predictions between checks for ones past their age: the check is cheap, not free."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A prediction with its feedback: what the bias monitor needs for error rates."""

    correct: bool
    segment: tuple[tuple[str, str], ...]


Pending = tuple[str | None, float | None, float, tuple[tuple[str, str], ...]]
"""A prediction awaiting feedback: label key or None, score or None, epoch seconds, segment."""


class _Model:
    __slots__ = (
        "calibration",
        "errors",
        "expired",
        "joined",
        "pending",
        "pending_bytes",
        "remembered",
        "timeline",
        "unmatched",
    )

    def __init__(self, config: ModelConfig) -> None:
        performance, seasonality = config.performance, config.seasonality
        errors, calibration = (
            performance.error_rate.build(seasonality),
            performance.calibration.build(seasonality),
        )
        assert isinstance(errors, DriftDetector)
        assert isinstance(calibration, DriftDetector)
        self.errors = errors
        self.calibration = calibration
        self.pending: OrderedDict[str, Pending] = OrderedDict()
        self.pending_bytes = 0
        self.timeline: deque[datetime] = deque(maxlen=TIMELINE)
        self.joined = self.expired = self.unmatched = self.remembered = 0

    def forget(self, request_id: str) -> Pending | None:
        entry = self.pending.pop(request_id, None)
        if entry is not None:
            self.pending_bytes -= entry_bytes(request_id, entry)
        return entry

    def expire_oldest(self) -> None:
        request_id, entry = self.pending.popitem(last=False)
        self.pending_bytes -= entry_bytes(request_id, entry)
        self.expired += 1


def entry_bytes(request_id: str, entry: Pending) -> int:
    """Estimated memory of one waiting prediction (within ~10% on CPython 3.11)."""
    label, _, _, segment = entry
    size = ENTRY_BYTES + len(request_id) + (len(label) if label else 0)
    for key, value in segment:
        size += PAIR_BYTES + len(key) + len(value)
    return size


class Performance:
    """Feedback joins of every model of a partition.

    Besides each model's own bounds, ``max_bytes`` bounds the predictions awaiting
    feedback of the whole partition: with hundreds of models each at its own limit
    they would hold gigabytes. Past it, the oldest predictions of the model holding
    the most leave first, so a model that starts late still gets its joins.
    """

    def __init__(self, budget: Budget, max_bytes: int = 64 << 20, changed: set[str] | None = None) -> None:
        self.budget = budget
        self.max_bytes = max_bytes
        self.pending_total = 0
        """Estimated bytes of every model's waiting predictions."""
        self._models: dict[str, _Model] = {}
        self.changed = changed if changed is not None else set()
        """Models whose predictions were shed for another model's (their saved state is stale)."""

    def export_model(self, model_id: str) -> dict[str, Any] | None:
        """The model's join state as plain data: detectors, waiting predictions, counts."""
        model = self._models.get(model_id)
        if model is None:
            return None
        return {
            "errors": record(model.errors) if savable(model.errors) else None,
            "calibration": record(model.calibration) if savable(model.calibration) else None,
            # ids and entries apart: copies of two lists, no new object per waiting prediction
            "pending": [list(model.pending), list(model.pending.values())],
            "timeline": list(model.timeline),
            "counts": [model.joined, model.expired, model.unmatched, model.remembered],
        }

    def import_model(self, model_id: str, data: dict[str, Any], config: ModelConfig) -> None:
        """Install a model's state saved by ``export_model``; ``StateError`` when it is malformed."""
        model = _Model(config)
        try:
            if data["errors"] is not None:  # else a fresh one, from the configuration
                model.errors = restore_as(data["errors"], DriftDetector)
            if data["calibration"] is not None:
                model.calibration = restore_as(data["calibration"], DriftDetector)
            request_ids, entries = data["pending"]
            for request_id, (label, score, at, segment) in zip(request_ids, entries, strict=True):
                entry: Pending = (label, score, float(at), tuple((str(k), str(v)) for k, v in segment))
                model.pending[request_id] = entry
                model.pending_bytes += entry_bytes(request_id, entry)
            model.timeline.extend(map(datetime.fromisoformat, data["timeline"]))
            model.joined, model.expired, model.unmatched, model.remembered = (int(n) for n in data["counts"])
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, StateError):
                raise
            raise StateError(f"feedback join of {model_id}: {type(error).__name__}: {error}") from None
        self._models[model_id] = model
        self.pending_total += model.pending_bytes
        self.budget.used += 1

    @property
    def keys(self) -> int:
        return 2 * len(self._models)

    def pending(self, model_id: str) -> int:
        model = self._models.get(model_id)
        return len(model.pending) if model else 0

    def pending_bytes(self, model_id: str) -> int:
        """Estimated memory of the model's predictions awaiting feedback."""
        model = self._models.get(model_id)
        return model.pending_bytes if model else 0

    def counts(self, model_id: str) -> dict[str, int]:
        model = self._models.get(model_id)
        if model is None:
            return {"joined": 0, "expired": 0, "unmatched": 0}
        return {"joined": model.joined, "expired": model.expired, "unmatched": model.unmatched}

    def remember(self, event: InferenceEvent, config: ModelConfig) -> None:
        prediction = event.prediction
        if prediction.label is None and prediction.score is None:
            return
        model = self._model(event.model_id, config)
        if model is None:
            return
        now = event.ts.timestamp()
        pending = model.pending
        held = model.pending_bytes
        entry: Pending = (
            None if prediction.label is None else label_key(prediction.label),
            prediction.score,
            now,
            tuple(event.segment.items()) if event.segment else (),
        )
        model.forget(event.request_id)  # a repeated request id replaces its prediction
        pending[event.request_id] = entry
        model.pending_bytes += entry_bytes(event.request_id, entry)
        section = config.performance
        while pending and (
            len(pending) > section.max_pending or model.pending_bytes > section.max_pending_bytes
        ):
            model.expire_oldest()
        model.remembered += 1
        if model.remembered % AGE_CHECK_EVERY == 0:
            horizon = now - section.max_pending_age_seconds
            while pending and next(iter(pending.values()))[2] < horizon:
                model.expire_oldest()
        self.pending_total += model.pending_bytes - held
        while self.pending_total > self.max_bytes:
            self._shed(model)

    def _shed(self, inserting: _Model) -> None:
        """Expire one prediction: the inserting model's if it holds over its share, else the largest's."""
        share = self.max_bytes / len(self._models)
        model = inserting
        if inserting.pending_bytes <= share or not inserting.pending:
            model_id, model = max(self._models.items(), key=lambda item: item[1].pending_bytes)
            self.changed.add(model_id)
        held = model.pending_bytes
        model.expire_oldest()
        self.pending_total += model.pending_bytes - held

    def observe(self, event: FeedbackEvent, config: ModelConfig) -> tuple[list[Signal], Outcome | None]:
        model = self._models.get(event.model_id)
        held = model.pending_bytes if model else 0
        entry = model.forget(event.request_id) if model else None
        if model is not None:
            self.pending_total += model.pending_bytes - held
        if model is None or entry is None:
            if model is not None:
                model.unmatched += 1
            return [], None
        model.joined += 1
        model.timeline.append(event.ts)
        predicted, score, predicted_at, segment = entry
        signals: list[Signal] = []
        outcome = None
        if predicted is not None:
            correct = predicted == label_key(event.label)
            outcome = Outcome(correct, segment)
            model.errors.update(0 if correct else 1, predicted_at)
            if model.errors.drift_detected and model.errors.evidence["chart"] == "rate-up":
                signals.append(self._error_signal(event, model))
        truth = as_binary(event.label)
        if score is not None and truth is not None:
            model.calibration.update(truth - score, predicted_at)
            if model.calibration.drift_detected:
                signals.append(self._calibration_signal(event, model))
        return signals, outcome

    def _model(self, model_id: str, config: ModelConfig) -> _Model | None:
        model = self._models.get(model_id)
        if model is None and self.budget.take():
            model = self._models[model_id] = _Model(config)
        return model

    def _error_signal(self, event: FeedbackEvent, model: _Model) -> Signal:
        evidence = model.errors.evidence
        phrase, magnitude = change(evidence)
        when = since(evidence, model.timeline, model.errors.n_seen)
        started = f" since {when['ts']}" if when["ts"] else ""
        return Signal(
            rule="performance-drift",
            subject="error-rate",
            severity="high",
            message=f"error rate of {event.model_id} rose: {phrase} with feedback{started}",
            details={
                "key": "error_rate",
                "kind": "performance",
                "change": evidence["chart"],
                "magnitude": magnitude,
                "since": when,
                "reference": evidence["reference"],
                "window": evidence["window"],
                "statistic": evidence["statistic"],
                "labelled_events": model.errors.n_seen,
                **({"expected": evidence["expected"]} if "expected" in evidence else {}),
                "join": {"joined": model.joined, "expired": model.expired, "unmatched": model.unmatched},
            },
        )

    def _calibration_signal(self, event: FeedbackEvent, model: _Model) -> Signal:
        evidence = model.calibration.evidence
        phrase, magnitude = change(evidence)
        when = since(evidence, model.timeline, model.calibration.n_seen)
        return Signal(
            rule="calibration-drift",
            subject="label-minus-score",
            severity="medium",
            message=(
                f"calibration of {event.model_id} changed (label - score residual) {phrase}; "
                f"{when['events_ago']} labelled events in the new regime"
            ),
            details={
                "key": "label_minus_score",
                "kind": "performance",
                "change": evidence["chart"],
                "magnitude": magnitude,
                "since": when,
                "reference": evidence["reference"],
                "window": evidence["window"],
                "statistic": evidence["statistic"],
                "labelled_events": model.calibration.n_seen,
            },
        )
