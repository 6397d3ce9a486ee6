"""Rate changes of a 0/1 stream whose usual rate follows the clock: error rates of live models."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator
from typing import Any, ClassVar

from detectors.base import DriftDetector, InputKind
from detectors.drift.bernoulli_cusum import step_chart
from detectors.drift.seasonal_cusum import BUCKETS, DAY_NAMES
from detectors.registry import register

LEARN_BELOW = 0.5
"""Share of the threshold above which a chart's values do not teach the profile."""
MAX_FACTOR_STEP = 5.0
"""Largest change of the regime factor one detection accepts."""
SETTLE = 400
"""Labels after a detection that measure the new regime before the charts resume."""


class SeasonalBernoulliCUSUM(DriftDetector):
    """Likelihood-ratio CUSUM for the rate of a 0/1 stream against a rate profile learned online.

    Error rates follow the traffic: a model errs more on the evening mix than on the
    night's, so a reference rate frozen from the first labels (``bernoulli-cusum``)
    is wrong for most of the day, and a rise by half drowns in the cycle. This
    detector learns the usual rate per hour of the day (and weekday / weekend, for
    ``weekly``) and charts each label against the rate usual for its time:

    1. **Profile.** Per bucket, decayed counts of labels and ones (memory ``memory``
       labels per bucket). The expected rate at ``at`` is the bucket's, smoothed
       with its neighbouring hours (weights 1-2-1) and shrunk toward the overall
       rate by ``prior`` labels. Labels teach the profile while both charts are
       below half their threshold, so a change under way is not learnt.
    2. **Warm-up.** Nothing is judged before ``reference_size`` labels, nor in a bucket
       whose smoothed count is below ``min_labels`` (the first day, the first
       weekend for ``weekly``). Without a cycle (``none``) the first
       ``reference_size`` labels are the reference, as for ``bernoulli-cusum``: there
       is nothing to follow, and a rate that kept learning would absorb a change
       before it is found.
    3. **Charts.** Up: the log-likelihood ratio of "the rate is ``ratio_up`` x the
       usual" per label; down: of "it is the usual / ``ratio_up``". A chart above
       ``threshold`` is a detection; the down chart reports only when ``ratio_down``
       is set (error rates: a falling rate is good news) and otherwise only moves the
       regime back.
    4. **Regime.** A detection accepts the new rate: the next ``SETTLE`` labels
       measure it as a factor on the whole profile (labels teach the profile divided
       by it), so one change yields one detection, and a return to the usual rate is
       accepted silently by the down chart.

    Parameters
    ----------
    seasonality
        ``weekly`` (hour of day x weekday/weekend), ``daily`` or ``none``.
    utc_offset_minutes
        Offset of the traffic's local time from UTC.
    reference_size
        Labels before anything is judged.
    memory
        Memory of each bucket's counts, in labels.
    prior
        Weight, in labels, of the overall rate in a bucket's expected rate.
    min_labels
        Smoothed labels a bucket needs before its values are judged.
    ratio_up
        Rate multiple the charts are tuned to find fastest (1.5: a rise by half).
    ratio_down
        Rate divisor whose fall is reported; ``None`` reports rises only.
    threshold
        Decision interval, in nats of evidence.

    Examples
    --------
    >>> import math, random
    >>> rng = random.Random(2)
    >>> detector = SeasonalBernoulliCUSUM(seasonality="daily")
    >>> start = 1_767_571_200  # Monday 2026-01-05 00:00 UTC
    >>> for i in range(8 * 4320):
    ...     at = start + 20 * i
    ...     usual = 0.1 * (1 + 0.3 * math.sin(2 * math.pi * (at % 86400) / 86400))
    ...     rate = usual * (1.5 if i >= 7 * 4320 else 1.0)
    ...     detector.update(rng.random() < rate, at)
    ...     if detector.drift_detected:
    ...         break
    >>> i >= 7 * 4320, detector.evidence["chart"], detector.evidence["rate_ratio"] > 1.3
    (True, 'rate-up', True)
    """

    input_kind: ClassVar[InputKind] = "binary"
    follows_cycle: ClassVar[bool] = True
    STATE_FIELDS: ClassVar[tuple[str, ...] | None] = (
        "n_seen",
        "detections",
        "_counts",
        "_ones",
        "_learnt",
        "_factor",
        "_settle",
        "_settle_ones",
        "_settle_usual",
        "_up",
        "_down",
        "_at",
    )
    """Per bucket the decayed label and one counts (float64; the last two entries the
    overall ones), labels learnt, the regime factor, the labels left to settle it and their
    ones and usual rates, both charts [statistic, values,
    ones] and the time of the last label."""

    registry_name = "seasonal-bernoulli-cusum"
    PARAMS = (
        "seasonality",
        "utc_offset_minutes",
        "reference_size",
        "memory",
        "prior",
        "min_labels",
        "ratio_up",
        "ratio_down",
        "threshold",
    )

    def __init__(
        self,
        seasonality: str = "weekly",
        utc_offset_minutes: int = 0,
        reference_size: int = 500,
        memory: float = 3000.0,
        prior: float = 200.0,
        min_labels: float = 600.0,
        ratio_up: float = 1.5,
        ratio_down: float | None = None,
        threshold: float = 9.0,
    ) -> None:
        if seasonality not in BUCKETS:
            raise ValueError(f"seasonality must be one of {', '.join(BUCKETS)}, not {seasonality!r}")
        if ratio_up <= 1.0 or (ratio_down is not None and ratio_down <= 1.0):
            raise ValueError("ratio_up and ratio_down must be greater than 1")
        if memory < 10 or prior < 0 or threshold <= 0:
            raise ValueError("memory >= 10, prior >= 0 and threshold > 0 are required")
        self.seasonality = seasonality
        self.utc_offset_minutes = utc_offset_minutes
        self.reference_size = reference_size
        self.memory = memory
        self.prior = prior
        self.min_labels = min_labels
        self.ratio_up = ratio_up
        self.ratio_down = ratio_down
        self.threshold = threshold
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self.detections = 0
        size = BUCKETS[self.seasonality]
        self._counts = array("d", [0.0] * (size + 1))  # the last entry: every bucket together
        self._ones = array("d", [0.0] * (size + 1))
        self._learnt = 0
        self._factor = 1.0
        self._settle = 0
        self._settle_ones = self._settle_usual = 0.0
        self._up = [0.0, 0, 0]
        self._down = [0.0, 0, 0]
        self._at = 0.0

    @property
    def warming_up(self) -> bool:
        return self._learnt < self.reference_size

    def _bucket(self, at: float | None) -> int:
        size = len(self._counts) - 1
        if at is None or size == 1:
            return 0
        local = at + 60.0 * self.utc_offset_minutes
        hour = int(local // 3600) % 24
        if size == 48 and (int(local // 86_400) + 3) % 7 >= 5:  # 1970-01-01 was a Thursday
            return 24 + hour
        return hour

    def expected(self, bucket: int) -> tuple[float, float]:
        """The usual rate in ``bucket`` (before the regime factor) and the labels behind it."""
        counts, ones = self._counts, self._ones
        size = len(counts) - 1
        overall = (ones[size] + 1.0) / (counts[size] + 2.0)
        if size == 1:
            return overall, counts[0]
        base = 24 if bucket >= 24 else 0
        hour = bucket - base
        left, right = base + (hour - 1) % 24, base + (hour + 1) % 24
        n = counts[left] + 2.0 * counts[bucket] + counts[right]
        k = ones[left] + 2.0 * ones[bucket] + ones[right]
        return (k + self.prior * overall) / (n + self.prior), n

    def update(self, x: Any, at: float | None = None) -> None:
        if x is None:
            return
        one = 1 if x else 0
        self.n_seen += 1
        self._drift = False
        if at is not None:
            self._at = at
        bucket = self._bucket(at)
        if self._settle:
            self._settling(bucket, one)
            return
        if self._learnt >= self.reference_size:
            usual, labels = self.expected(bucket)
            if labels >= self.min_labels or len(self._counts) == 2:  # no cycle: the reference is warm
                # Judged against the edges of what the usual rate may be (one standard error of
                # the profile's estimate): a profile of a few days does not make noise a change.
                rate = usual * self._factor
                margin = (
                    0.0
                    if len(self._counts) == 2
                    else math.sqrt((1 - usual) / (usual * (1.5 * labels + self.prior)))
                )
                high, low = min(0.98, rate * (1.0 + margin)), rate * max(0.0, 1.0 - margin)
                up = self._step(self._up, high, min(0.99, high * self.ratio_up), one)
                down = low > 0.0 and self._step(
                    self._down, low, low / (self.ratio_down or self.ratio_up), one
                )
                if up or down:
                    self._detect(up, rate)
                    return
        # Without a cycle there is nothing to follow: the first ``reference_size`` labels are the
        # reference (a change afterwards would be learnt before it is found), and detections move
        # the regime.
        if len(self._counts) == 2 and self._learnt >= self.reference_size:
            return
        limit = LEARN_BELOW * self.threshold
        if self._up[0] < limit and self._down[0] < limit:
            self._learn(bucket, one)

    def _settling(self, bucket: int, one: int) -> None:
        """Right after a detection, the next labels measure the new regime (charts rest)."""
        self._settle_ones += one
        self._settle_usual += self.expected(bucket)[0]
        self._settle -= 1
        if not self._settle:
            ratio = (self._settle_ones + 0.5) / (self._settle_usual + 0.5)
            self._factor = min(MAX_FACTOR_STEP, max(1.0 / MAX_FACTOR_STEP, ratio))
            if abs(math.log(self._factor)) < 0.5 * math.log(self.ratio_up):
                self._factor = 1.0  # within noise of the usual rate
            self._settle_ones = self._settle_usual = 0.0

    def _step(self, chart: list[Any], p0: float, p1: float, one: int) -> bool:
        increment = math.log(p1 / p0) if one else math.log((1.0 - p1) / (1.0 - p0))
        return step_chart(chart, increment, one, self.threshold)

    def _learn(self, bucket: int, one: int) -> None:
        keep = 1.0 - 1.0 / self.memory
        counts, ones = self._counts, self._ones
        share = one / self._factor  # the profile holds the usual rate; the factor, the regime
        for at in (bucket, len(counts) - 1):
            counts[at] = keep * counts[at] + 1.0
            ones[at] = keep * ones[at] + share
        self._learnt += 1

    def _detect(self, up: bool, p0: float) -> None:
        chart = self._up if up else self._down
        n, ones = int(chart[1]), int(chart[2])
        rate = ones / n if n else 0.0
        ratio = rate / p0
        step = (
            min(MAX_FACTOR_STEP, max(1.0 / MAX_FACTOR_STEP, ratio)) if rate > 0.0 else 1.0 / MAX_FACTOR_STEP
        )
        factor = self._factor * step
        # Back toward the usual rate after a rise (or a fall): accepted silently, the change
        # was reported when it began.
        back = self._factor != 1.0 and abs(math.log(factor)) < 0.5 * abs(math.log(self._factor))
        self._factor = 1.0 if back else factor
        report = (up or self.ratio_down is not None) and not back
        self._drift = report
        if report:
            self.detections += 1
            self._evidence = self._describe(up, chart, p0, rate, ratio)
        self._up[:] = [0.0, 0, 0]
        self._down[:] = [0.0, 0, 0]
        self._settle = SETTLE

    def _describe(self, up: bool, chart: list[Any], p0: float, rate: float, ratio: float) -> dict[str, Any]:
        size = len(self._counts) - 1
        local = self._at + 60.0 * self.utc_offset_minutes
        hour = f"{int(local // 3600) % 24:02d}:00"
        day = DAY_NAMES[(int(local // 86_400) + 3) % 7]
        n = int(chart[1])
        return {
            "chart": "rate-up" if up else "rate-down",
            "reference": {"n": self._learnt, "rate": p0},
            "window": {"n": n, "rate": rate},
            "rate_ratio": ratio,
            "events_since_change": n,
            "change_located": True,
            "statistic": float(chart[0]),
            "expected": {
                "when": "" if size == 1 else hour if size == 24 else f"{day} {hour}",
                "seasonality": self.seasonality,
                "rate": p0,
            },
        }

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {
            "seasonality": "none",
            "reference_size": 100,
            "ratio_up": 2.0,
            "ratio_down": 2.0,
            "threshold": 6.0,
        }


register(SeasonalBernoulliCUSUM)
