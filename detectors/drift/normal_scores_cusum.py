"""Mean and spread changes of a numeric stream, whatever its distribution."""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from statistics import NormalDist, fmean, median, pstdev
from typing import Any, ClassVar

from detectors.base import DriftDetector, InputKind
from detectors.registry import register

_INV = NormalDist().inv_cdf
CHARTS = ("mean-up", "mean-down", "spread-up", "spread-down")


class NormalScoresCUSUM(DriftDetector):
    """Four CUSUM charts over normal scores taken against a frozen reference sample.

    The first ``reference_size`` values form the reference. Every later value is
    turned into a normal score: its mid-rank among the reference values, mapped
    through the standard normal quantile function, standardized over the reference.
    Under no change the scores have mean 0 and variance 1 *whatever the feature's
    distribution* (prices, counts, latencies, 0/1 flags), so one set of thresholds
    holds for every feature, and a single
    outlier moves a score by at most about 2.9 (the rank is capped), so outliers do
    not trigger the charts. Four CUSUMs run over the scores ``z``:

    - mean up / down: ``S = max(0, S ± z - mean_slack)``, alarm at ``mean_threshold``;
    - spread up: ``S = max(0, S + z² - spread_slack)``, alarm at ``spread_threshold``;
    - spread down: ``S = max(0, S + shrink_slack - z²)``, alarm at ``shrink_threshold``
      (a feature that suddenly becomes constant, e.g. a default filled in upstream).

    The defaults were calibrated with ``bench/detection.py`` (30 seeds per cell):
    together the four charts raise about 0.01 false alarms per 10k stationary values
    (one in a million), a 1-sigma mean shift is found after 29 values (median; 40 at
    the 90th percentile) and a fourfold variance after 26. river's ADWIN needs 56
    values for the mean shift and misses most variance changes; small shifts (0.5
    sigma) are where ADWIN stays ahead (120 values against 199).

    After a detection the detector learns a new reference from the new regime, so
    one change yields one detection. ``evidence`` then holds the reference's and the
    changed window's statistics and how many values ago the change began (where
    the alarming chart last stood at zero).

    Parameters
    ----------
    reference_size
        Values in the reference sample (the warm-up). 256 keeps the rank
        transform's resolution at about 0.4% and the state near 5 KB.
    mean_slack, mean_threshold
        CUSUM allowance ``k`` and decision interval ``h`` of the mean charts, in
        standard deviations. ``k = 0.5`` is optimal for a 1-sigma shift.
    spread_slack, spread_threshold
        The same for the spread-up chart over ``z²`` (``E[z²] ≈ 1`` without change).
    shrink_slack, shrink_threshold
        The same for the spread-down chart.
    recent
        Raw values kept to describe the changed window and locate the change.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(42)
    >>> detector = NormalScoresCUSUM()
    >>> for i in range(2000):
    ...     detector.update(rng.gauss(50.0, 4.0) + (4.0 if i >= 1000 else 0.0))
    ...     if detector.drift_detected:
    ...         break
    >>> i, detector.evidence["chart"], detector.evidence["events_since_change"]
    (1026, 'mean-up', 22)
    >>> round(detector.evidence["shift_sigmas"], 1)
    1.3
    """

    input_kind: ClassVar[InputKind] = "numeric"
    STATE_FIELDS: ClassVar[tuple[str, ...] | None] = (
        "n_seen",
        "detections",
        "_recent",
        "_sample",
        "_cuts",
        "_gap",
        "_equal",
        "_m",
        "_shrink_limit",
        "_reference",
        "_up",
        "_down",
        "_spread",
        "_shrink",
    )
    """Recent values, the reference sample while it is collected, then its cut points,
    gap and tie scores and summary, and the four chart statistics."""
    __slots__ = (
        "_cuts",
        "_down",
        "_equal",
        "_gap",
        "_m",
        "_recent",
        "_reference",
        "_sample",
        "_shrink",
        "_shrink_limit",
        "_spread",
        "_up",
        "detections",
        "mean_slack",
        "mean_threshold",
        "recent",
        "reference_size",
        "shrink_slack",
        "shrink_threshold",
        "spread_slack",
        "spread_threshold",
    )
    """Slots only: ``update`` runs once per feature of every event."""

    registry_name = "normal-scores-cusum"
    PARAMS = (
        "reference_size",
        "mean_slack",
        "mean_threshold",
        "spread_slack",
        "spread_threshold",
        "shrink_slack",
        "shrink_threshold",
        "recent",
    )

    def __init__(
        self,
        reference_size: int = 256,
        mean_slack: float = 0.5,
        mean_threshold: float = 15.0,
        spread_slack: float = 1.6,
        spread_threshold: float = 40.0,
        shrink_slack: float = 0.6,
        shrink_threshold: float = 20.0,
        recent: int = 32,
    ) -> None:
        if reference_size < 16:
            raise ValueError("reference_size must be at least 16")
        self.reference_size = reference_size
        self.mean_slack = mean_slack
        self.mean_threshold = mean_threshold
        self.spread_slack = spread_slack
        self.spread_threshold = spread_threshold
        self.shrink_slack = shrink_slack
        self.shrink_threshold = shrink_threshold
        self.recent = recent
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self._recent: deque[float] = deque(maxlen=self.recent)
        self.detections = 0
        self._new_reference()

    def _new_reference(self) -> None:
        self._sample: list[float] | None = []
        self._cuts: array[float] | None = None
        self._gap = array("f")
        self._equal = array("f")
        self._m = 0
        self._shrink_limit = self.shrink_threshold
        self._reference: dict[str, float] = {}
        self._up = self._down = self._spread = self._shrink = 0.0

    @property
    def warming_up(self) -> bool:
        return self._cuts is None

    def update(self, x: Any, at: float | None = None) -> None:
        if x is None:
            return
        self.n_seen += 1
        self._recent.append(x)
        cuts = self._cuts
        if cuts is None:
            self._drift = False
            sample = self._sample
            assert sample is not None
            sample.append(x)
            if len(sample) >= self.reference_size:
                self._freeze(sample)
            return
        i = bisect_left(cuts, x)
        z = self._equal[i] if i < self._m and cuts[i] == x else self._gap[i]
        z2 = z * z
        up = self._up + z - self.mean_slack
        down = self._down - z - self.mean_slack
        spread = self._spread + z2 - self.spread_slack
        shrink = self._shrink + self.shrink_slack - z2
        self._up = up if up > 0.0 else 0.0
        self._down = down if down > 0.0 else 0.0
        self._spread = spread if spread > 0.0 else 0.0
        self._shrink = shrink if shrink > 0.0 else 0.0
        if (
            up > self.mean_threshold
            or down > self.mean_threshold
            or spread > self.spread_threshold
            or shrink > self._shrink_limit
        ):
            self._detect()
        else:
            self._drift = False

    def _freeze(self, sample: list[float]) -> None:
        """Turn the reference sample into value -> standardized normal score tables.

        Scores are standardized by their own mean and spread over the reference, so
        discrete features (0/1 flags, small counts), whose mid-rank scores spread
        less than N(0, 1), get the same false alarm rate as continuous ones. A
        constant reference keeps raw scores and cannot shrink further, so its
        spread-down chart is switched off.
        """
        ordered = sorted(sample)
        n = len(ordered)
        cuts: list[float] = []
        below: list[int] = []
        equal: list[int] = []
        for position, value in enumerate(ordered):
            if cuts and cuts[-1] == value:
                equal[-1] += 1
            else:
                cuts.append(value)
                below.append(position)
                equal.append(1)
        # Mid-rank of a new value among n reference values, as a probability.
        gap = [_INV((b + 0.5) / (n + 1)) for b in [*below, n]]
        tied = [_INV((b + e / 2 + 0.5) / (n + 1)) for b, e in zip(below, equal, strict=True)]
        center = sum(z * e for z, e in zip(tied, equal, strict=True)) / n
        spread = math.sqrt(sum((z - center) ** 2 * e for z, e in zip(tied, equal, strict=True)) / n)
        self._shrink_limit = self.shrink_threshold
        if spread < 1e-9:
            center, spread, self._shrink_limit = 0.0, 1.0, math.inf
        self._gap = array("f", [(z - center) / spread for z in gap])
        self._equal = array("f", [(z - center) / spread for z in tied])
        self._cuts = array("d", cuts)
        self._m = len(cuts)
        self._reference = _describe(ordered)
        self._sample = None

    def _detect(self) -> None:
        charts = {
            "mean-up": self._up - self.mean_threshold,
            "mean-down": self._down - self.mean_threshold,
            "spread-up": self._spread - self.spread_threshold,
            "spread-down": self._shrink - self._shrink_limit,
        }
        chart = max(charts, key=lambda c: charts[c])
        run = self._run_length(chart)
        window = list(self._recent)[-run:] if run else list(self._recent)
        reference = self._reference
        after = _describe(sorted(window))
        sd = reference["sd"] or 1.0
        self.detections += 1
        self._evidence = {
            "chart": chart,
            "reference": reference,
            "window": after,
            "shift_sigmas": (after["mean"] - reference["mean"]) / sd,
            "spread_ratio": after["sd"] / sd if reference["sd"] else float("inf"),
            "events_since_change": run or len(self._recent),
            "change_located": run > 0,
            "statistic": max(self._up, self._down, self._spread, self._shrink),
        }
        self._drift = True
        self._new_reference()

    def _run_length(self, chart: str) -> int:
        """Values since the alarming chart last stood at zero (0 if beyond ``recent``).

        Replays the kept raw values through the chart backwards: the chart's value
        is the sum of its increments since it last left zero.
        """
        target = {"mean-up": self._up, "mean-down": self._down, "spread-up": self._spread}.get(
            chart, self._shrink
        )
        total = 0.0
        for count, x in enumerate(reversed(self._recent), start=1):
            z = self._score(x)
            total += {
                "mean-up": z - self.mean_slack,
                "mean-down": -z - self.mean_slack,
                "spread-up": z * z - self.spread_slack,
                "spread-down": self.shrink_slack - z * z,
            }[chart]
            if abs(total - target) <= 1e-6 * max(1.0, abs(target)):
                return count
        return 0

    def _score(self, x: float) -> float:
        cuts = self._cuts
        assert cuts is not None
        i = bisect_left(cuts, x)
        return self._equal[i] if i < self._m and cuts[i] == x else self._gap[i]

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"reference_size": 64, "mean_threshold": 6.0, "recent": 8}


def _describe(ordered: list[float]) -> dict[str, float]:
    """Window statistics of sorted values: size, mean, sd and three quantiles.

    Computed on values scaled by the largest magnitude, so a producer's sentinel
    (say DBL_MAX) yields an infinite statistic instead of an overflow error.
    """
    n = len(ordered)
    scale = max(abs(ordered[0]), abs(ordered[-1])) or 1.0
    scaled = [v / scale for v in ordered]

    def q(p: float) -> float:
        return ordered[min(n - 1, int(p * n))]

    return {
        "n": float(n),
        "mean": _times(fmean(scaled), scale),
        "sd": _times(pstdev(scaled), scale) if n > 1 else 0.0,
        "p05": q(0.05),
        "median": median(ordered),
        "p95": q(0.95),
    }


def _times(value: float, scale: float) -> float:
    try:
        return value * scale
    except OverflowError:
        return math.copysign(math.inf, value)


register(NormalScoresCUSUM)
