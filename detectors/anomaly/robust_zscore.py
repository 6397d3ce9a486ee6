"""Unusual feature vectors, scored by robust per-feature z-scores."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from detectors.base import AnomalyDetector, InputKind
from detectors.registry import register


class RobustZScore(AnomalyDetector):
    """Sum of capped per-feature z-scores against outlier-resistant running statistics.

    Each feature keeps an exponentially weighted mean and variance. Unlike a plain
    EWMA z-score, a value's pull on them is clipped at ``clip`` standard deviations
    (a Huber-style update), so a burst of anomalies does not inflate the variance
    and hide the anomalies that follow; each feature's contribution to the score is
    capped at ``cap``, so one wild feature cannot outvote the rest.

    On river's ``Shuttle`` (first 10k rows, score before learn) this reaches ROC AUC
    0.996, against 0.983-0.988 for the plain EWMA z-score and 0.90 for river's
    ``HalfSpaceTrees`` with default settings, at about 1 µs per feature
    (``bench/detection.py``). The result holds over a wide range of settings
    (alpha 0.003-0.03, clip 2-5, cap 4-10 all score 0.991-0.997).

    Parameters
    ----------
    alpha
        Weight of the newest value in the running statistics (memory ~ 1/alpha).
    clip
        Standard deviations beyond which a value's update is clipped.
    cap
        Largest contribution of one feature to the score.
    grace_period
        Values a feature needs before its updates are clipped.
    min_sd
        Floor of a feature's standard deviation (constant features).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(5)
    >>> detector = RobustZScore()
    >>> for _ in range(500):
    ...     detector.learn_one({"amount": rng.gauss(40, 5), "risk": rng.gauss(0.2, 0.05)})
    >>> usual = detector.score_one({"amount": 41.0, "risk": 0.21})
    >>> odd = detector.score_one({"amount": 90.0, "risk": 0.21})
    >>> round(usual, 1), round(odd, 1)
    (0.4, 6.2)
    """

    input_kind: ClassVar[InputKind] = "features"
    STATE_FIELDS: ClassVar[tuple[str, ...] | None] = ("_stats",)
    """Per feature: [mean, variance, count]."""

    registry_name = "robust-zscore"
    PARAMS = ("alpha", "clip", "cap", "grace_period", "min_sd")

    def __init__(
        self,
        alpha: float = 0.01,
        clip: float = 3.0,
        cap: float = 6.0,
        grace_period: int = 20,
        min_sd: float = 1e-3,
    ) -> None:
        self.alpha = alpha
        self.clip = clip
        self.cap = cap
        self.grace_period = grace_period
        self.min_sd = min_sd
        super().__init__()

    def _reset(self) -> None:
        # per feature: [mean, variance, count]
        self._stats: dict[str, list[float]] = {}

    def score_one(self, x: Mapping[str, float | None]) -> float:
        score = 0.0
        cap, floor = self.cap, self.min_sd
        stats = self._stats
        for name, value in x.items():
            if value is None:
                continue
            state = stats.get(name)
            if state is None:
                continue
            z = abs(value - state[0]) / (math.sqrt(state[1]) + floor)
            score += z if z < cap else cap
        return score

    def learn_one(self, x: Mapping[str, float | None]) -> None:
        stats = self._stats
        for name, value in x.items():
            if value is None:
                continue
            state = stats.get(name)
            if state is None:
                stats[name] = [float(value), 0.0, 1.0]
                continue
            count = state[2] = state[2] + 1.0
            weight = self.alpha if count * self.alpha > 1.0 else 1.0 / count
            delta = value - state[0]
            if count > self.grace_period:
                limit = self.clip * math.sqrt(state[1])
                delta = limit if delta > limit else -limit if delta < -limit else delta
            state[0] += weight * delta
            state[1] = (1.0 - weight) * (state[1] + weight * delta * delta)

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"alpha": 0.05, "clip": 2.0, "cap": 4.0, "grace_period": 5}


register(RobustZScore)
