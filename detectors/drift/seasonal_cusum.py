"""Changes of a numeric stream that follows the clock: CUSUM over residuals from a learned cycle."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator
from typing import Any, ClassVar

from detectors.base import DriftDetector, InputKind
from detectors.drift.model_day import ModelDay
from detectors.registry import register

BUCKETS = {"none": 1, "daily": 24, "weekly": 48}
"""Profile buckets per seasonality: hour of day, and weekday / weekend for ``weekly``."""
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
LEARN_BELOW = 0.5
"""Share of a chart's threshold above which the values do not teach the profile."""
UNCYCLED_VISITS = 32
"""Memory, in visits (of ``VALUES_PER_VISIT`` values), of a profile without a cycle: ~2,000 values,
so that a small shift is not learnt before it is found."""
VALUES_PER_VISIT = 64
"""Values that make one visit of a profile without a cycle (``none``, or events without a time):
its memory is then counted in values, as a stationary detector's is."""
VISIT = 24
"""Where the current visit's sums start in ``_charts``."""
POOL = 28
"""Where the pooled mean and variance are in ``_charts``."""
PHI_SEEN = 19
"""Where the count of the profile's residuals behind its autocorrelation estimate is in ``_charts``."""
PHI_PREVIOUS = 30
"""Where the previous profile residual is kept in ``_charts`` while that estimate warms up."""
TODAY = 31
"""Where the sum and count of the local day's residuals (in sd) are in ``_charts``."""
SMALL = 33
"""Where the small-shift mean charts (up, then down: statistic, values, sum z, sum z^2) are in
``_charts``, then their allowance and threshold (at ``SMALL + 8``)."""
CHARTS = 43
"""Numbers in ``_charts`` (``CHARTS_V1`` in state version 1, ``CHARTS_V2`` in version 2)."""
CHARTS_V1 = 30
CHARTS_V2 = 33
SMALL_SHIFT = 0.5
"""Mean shift, in sd, the second pair of mean charts is tuned to; they run only without a cycle
(``none``, or values without a time), where the profile is one level learnt over ~2,000 values
(an error of ~0.02 sd). A profile of hours, learnt from a few visits each, is off by 0.1-0.8 sd:
charts this small would report that error."""
SMALL_ARL = 1e6
"""Values between false alarms of one small-shift chart under no change (two charts: ~0.02 per
10k values, beside the 0.004 of the charts tuned to ``shift``)."""
OFFSETS = (0, 4, 8, 12, SMALL, SMALL + 4)
"""Where each chart (mean-up, mean-down, spread-up, spread-down, small mean-up, small mean-down)
starts in ``_charts``."""
HOLIDAY_RUN = 0.65
"""Share of the day's values an alarming run must span for the day's mean to tell a holiday."""
HOLIDAY_DAY_RUN = 0.8
"""The same, for the hourly look at the day before any alarm (``_watch_for_holiday``)."""
HOLIDAY_HOURS = 3
"""Hours of the day seen before the hourly look reads the day's mean."""
HOLIDAY_Z = 3.5
"""Standard errors (inflated for autocorrelation) the day's mean must lie from the weekday's
profile before the hourly look takes the day for a holiday."""
PHI_WARM_UP = 16
"""Independent values' worth of profile residuals that teach the autocorrelation before the profile
judges: ``PHI_WARM_UP`` times the variance inflation the pooled residuals show (16 values without
autocorrelation, ~300 at phi 0.9, where an estimate within ~0.03 keeps the charts' false-alarm rate)."""
SETTLE = 32
"""Values after a level change that place the new level before the charts resume."""
POOL_WARM_UP = 64
"""Values before the pooled level and variance judge anything."""
POOL_MEMORY = 1000
"""Memory, in values, of the pooled level and variance."""
COARSE_SHIFT = 3.0
"""While a profile is learnt, the mean charts are tuned to this shift (sd of everything seen so far):
gross changes are found on the first day; a daily cycle of a few sd is not taken for one."""
SPREAD_PRIOR_VALUES = 30
"""Weight, in values, of the prior (the variance level) in a bucket's variance."""
COARSE_RUN = 8
MAX_MAGNITUDE = 1e100
CAP = 4.0
GAP_HOURS = 5
"""Hours on either side whose weekday-weekend gap is averaged into the one a holiday is judged by."""
HOLIDAY_BAND = 0.3
"""A weekday's new level within this share of the weekday-weekend gap from the weekend's
is taken for a holiday (wider takes real changes of twice the gap for one)."""
VISIT_GATE = 3.0
"""A visit whose mean lies this many of its standard errors from the expected level does not
teach the profile (values 20 s apart: 0.22 sd for an hour of independent values)."""
"""Largest standardized innovation a chart takes: one wild value moves a chart by at most this."""


class SeasonalCUSUM(DriftDetector):
    """CUSUM charts over prewhitened residuals against a daily or weekly profile learned online.

    Inference traffic follows the clock: a feature's level and spread depend on the
    hour and on whether it is a weekday, and its noise is autocorrelated. A detector
    that compares values with one frozen reference alarms on every afternoon and
    every weekend. This one learns what each hour usually looks like and charts only
    what the cycle does not explain:

    1. **Profile.** The expected value at time ``at`` (the event's own time) is
       ``level + shape[bucket]``, interpolated between neighbouring hours, with a
       per-bucket variance. ``weekly`` buckets are hour x {weekday, weekend}, ``daily``
       the hour, ``none`` a single bucket. Each hour of traffic (a *visit*) is folded
       into its bucket when the hour ends, with weight ``1 / profile_visits`` (the
       bucket remembers its last few days), and into ``level`` with a memory of
       ``level_hours`` (slow growth is followed, not reported). Learning per visit
       rather than per value makes the memory a matter of days whatever the event
       rate. A bucket judges values once it and its neighbour have been visited
       ``min_visits`` times (more for autocorrelated values: ``_visits_needed``):
       the first day (the first weekend, for ``weekly``) is the warm-up, during
       which only gross changes (``COARSE_SHIFT`` sd against the level and variance
       of everything seen so far) are judged. Without a cycle, a visit
       is ``VALUES_PER_VISIT`` values and the memory ``UNCYCLED_VISITS`` visits.
    2. **Prewhitening.** Residuals ``z`` (in the bucket's standard deviations) are
       autocorrelated; an AR(1) coefficient ``phi`` is estimated online and the
       charts take the innovations ``e = (z - phi z') / sqrt(1 - phi^2)``, which are
       independent with unit variance under no change, so the thresholds mean what
       they say whatever the autocorrelation.
    3. **Charts.** Mean up / down over ``e`` (capped at 4): a shift of ``shift`` sd in
       the value is ``shift * sqrt((1 - phi) / (1 + phi))`` in ``e``, and the
       allowance and threshold follow ``phi`` so that the charts keep an average run
       of ``mean_arl`` values between false alarms (Siegmund's approximation). Spread
       up over ``e^2`` (capped at 16) and spread down (a feature stuck at one value).

    With ``weekly``, a weekday that looks like a weekend (a holiday) is judged against
    the weekend's profile for the rest of the day; the monitors let a model's numeric
    streams judge that together (``share_day``, ``ModelDay``), so that one stream moving
    is a change and all of them moving at once a holiday.

    After a detection the new regime is accepted (the level moves by the shift, the
    variances by the spread ratio), so one change yields one detection. ``evidence``
    says what was expected and how far the values are from it, e.g. 2.7 sd above
    the usual level for Tuesday 14:00.

    Parameters
    ----------
    seasonality
        ``weekly`` (hour of day x weekday/weekend; the default, safe for traffic
        with a daily cycle and quieter weekends), ``daily`` or ``none``.
    utc_offset_minutes
        Offset of the traffic's local time from UTC, so "weekend" and "14:00" are
        the users' (a fixed offset: a daylight-saving change shifts the profile by
        an hour for a day or so, which the interpolation between hours absorbs).
    profile_visits
        Memory of a bucket, in visits (days for ``daily``).
    level_hours
        Memory of the overall level, in hours.
    min_visits
        Visits of a bucket before values in it are judged.
    shift
        Mean shift, in standard deviations, the mean charts are tuned to find fastest.
    mean_arl
        Values between false alarms of one mean chart under no change.
    spread_slack, spread_threshold
        Allowance and decision interval of the spread-up chart over ``e^2``
        (``1.39`` is optimal for a doubled variance; a little more tolerates the
        uneven spread of real traffic).
    shrink_slack, shrink_threshold
        The same for the spread-down chart, set for a stream that stops varying
        (found after ~80 values), not for a spread that merely narrows.
    max_phi
        Largest autocorrelation the prewhitening assumes.
    transform
        ``log`` judges ``log(1 + x)`` (``x <= 0`` as 0): for latencies and token
        counts, whose noise is multiplicative, so their spread follows their level.

    Examples
    --------
    >>> import math, random
    >>> rng = random.Random(4)
    >>> detector = SeasonalCUSUM()
    >>> start = 1_767_571_200  # Monday 2026-01-05 00:00 UTC
    >>> found = None
    >>> for i in range(14 * 4320):
    ...     at = start + 20 * i
    ...     usual = 10 + 2 * math.sin(2 * math.pi * (at % 86400) / 86400)
    ...     shifted = i >= 10 * 4320 + 1000
    ...     detector.update(rng.gauss(usual + (1.0 if shifted else 0.0), 1.0), at)
    ...     if detector.drift_detected:
    ...         found = (i - 10 * 4320 - 1000, detector.evidence["chart"])
    ...         break
    >>> found
    (19, 'mean-up')
    >>> detector.evidence["expected"]["when"], round(detector.evidence["shift_sigmas"], 1)
    ('Thursday 05:00', 1.1)
    """

    input_kind: ClassVar[InputKind] = "numeric"
    follows_cycle: ClassVar[bool] = True
    """Configuration hands it the model's ``seasonality`` (``DetectorChoice.build``)."""
    __slots__ = (
        "_at",
        "_buckets",
        "_charts",
        "_coarse",
        "_coarse_h",
        "_coarse_k",
        "_coarse_phi",
        "_day_off",
        "_first",
        "_h",
        "_k",
        "_level",
        "_model_day",
        "_moved",
        "_needed",
        "_phi",
        "_phi_used",
        "_pool_n",
        "_profile",
        "_scale",
        "_second",
        "_settle",
        "_settle_n",
        "_settle_sum",
        "_slot",
        "_slot_base",
        "_stuck",
        "_visit",
        "_visit_bucket",
        "_visit_judged",
        "_visit_n",
        "_visits",
        "_z",
        "detections",
        "level_hours",
        "max_phi",
        "mean_arl",
        "min_visits",
        "profile_visits",
        "seasonality",
        "shift",
        "shrink_slack",
        "shrink_threshold",
        "spread_slack",
        "spread_threshold",
        "transform",
        "utc_offset_minutes",
    )
    """Slots only: ``update`` runs once per feature of every event."""
    LINKS: ClassVar[frozenset[str]] = frozenset({"_model_day"})
    STATE_VERSION: ClassVar[int] = 3
    """2: ``_charts`` grew by the previous residual of the profile autocorrelation's warm-up and the
    sum and count of the local day's residuals; 3: by the small-shift charts and their tuning.
    Version 1 and 2 records are upgraded (``_upgrade_state``)."""
    STATE_UPGRADES: ClassVar[frozenset[int]] = frozenset({1, 2})
    STATE_FIELDS: ClassVar[tuple[str, ...] | None] = (
        "n_seen",
        "detections",
        "_buckets",
        "_profile",
        "_scale",
        "_visits",
        "_level",
        "_slot",
        "_first",
        "_second",
        "_slot_base",
        "_visit",
        "_visit_bucket",
        "_visit_n",
        "_visit_judged",
        "_at",
        "_z",
        "_phi",
        "_coarse_phi",
        "_phi_used",
        "_k",
        "_h",
        "_coarse_k",
        "_coarse_h",
        "_needed",
        "_coarse",
        "_day_off",
        "_pool_n",
        "_settle",
        "_settle_n",
        "_settle_sum",
        "_stuck",
        "_moved",
        "_charts",
    )
    """The number of buckets, the profile (shape then spread per bucket, float32), bucket
    visits, the level and variance level, the cached half-hour slot, the visit being
    accumulated, the AR(1) estimates and chart tunings, the settle and stuck states, and
    the charts array (statistics, residual moments, visit sums, pooled mean and variance)."""

    registry_name = "seasonal-cusum"
    PARAMS = (
        "seasonality",
        "utc_offset_minutes",
        "profile_visits",
        "level_hours",
        "min_visits",
        "shift",
        "mean_arl",
        "spread_slack",
        "spread_threshold",
        "shrink_slack",
        "shrink_threshold",
        "max_phi",
        "transform",
    )

    def __init__(
        self,
        seasonality: str = "weekly",
        utc_offset_minutes: int = 0,
        profile_visits: float = 8.0,
        level_hours: float = 24.0,
        min_visits: int = 2,
        shift: float = 0.75,
        mean_arl: float = 5e6,
        spread_slack: float = 1.5,
        spread_threshold: float = 46.0,
        shrink_slack: float = 0.25,
        shrink_threshold: float = 20.0,
        max_phi: float = 0.9,
        transform: str = "none",
    ) -> None:
        if transform not in ("none", "log"):
            raise ValueError(f"transform must be 'none' or 'log', not {transform!r}")
        if seasonality not in BUCKETS:
            raise ValueError(f"seasonality must be one of {', '.join(BUCKETS)}, not {seasonality!r}")
        if profile_visits < 1 or level_hours <= 0 or min_visits < 1:
            raise ValueError("profile_visits >= 1, level_hours > 0 and min_visits >= 1 are required")
        if not 0.0 <= max_phi < 1.0 or shift <= 0 or mean_arl < 100:
            raise ValueError("max_phi must lie in [0, 1), shift be positive and mean_arl at least 100")
        self.seasonality = seasonality
        self.utc_offset_minutes = utc_offset_minutes
        self.profile_visits = profile_visits
        self.level_hours = level_hours
        self.min_visits = min_visits
        self.shift = shift
        self.mean_arl = mean_arl
        self.spread_slack = spread_slack
        self.spread_threshold = spread_threshold
        self.shrink_slack = shrink_slack
        self.shrink_threshold = shrink_threshold
        self.max_phi = max_phi
        self.transform = transform
        self._model_day: ModelDay | None = None  # wiring, not state: ``share_day``
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        size = BUCKETS[self.seasonality]
        self._buckets = size
        # Single precision: shapes are deviations from the level and spreads ratios near 1, so 7
        # significant digits are plenty, and the state stays within 2 KB per (model, feature).
        # per bucket: the shape (deviation from the level), then the spread (variance relative to
        # the variance level ``_scale``)
        self._profile = array("f", [0.0] * size + [1.0] * size)
        self._scale = math.nan  # the variance level: set by the first visit with some spread
        self._visits = array("B", bytes(size))
        self._level = math.nan
        self._slot = -1  # the half hour whose place in the profile (two buckets) is cached
        self._first = self._second = 0
        self._slot_base = 0.0
        self._visit = -1  # the hour (or block of values) being accumulated
        self._visit_bucket = 0
        self._visit_n = 0
        self._visit_judged = 0
        self._at = 0.0
        self._z = 0.0
        # mean, variance, lag-1 covariance and count of the residuals: the profile's, the pooled ones'

        self._phi = self._coarse_phi = 0.0
        self._phi_used = -1.0
        self._k = self._h = self._coarse_k = self._coarse_h = 0.0
        self._coarse = False
        self._pool_n = 0
        self._settle = self._settle_n = 0
        self._settle_sum = 0.0
        self._stuck = False
        self._moved = 0.0  # how far the level moved at the last reported change
        self._needed = self.min_visits
        self._day_off = -1  # a weekday (local day number) that looks like a weekend: a holiday
        # per chart (mean-up, mean-down, spread-up, spread-down): statistic, values, sum z, sum z^2
        # then at 16 and 20: mean, variance, lag-1 covariance and count of the residuals, the
        # profile's and the pooled ones'
        # then at VISIT: the visit's sum, sum of squares and sum of squared residuals, taken around
        # its first value (at VISIT + 3); at POOL: the pooled mean and variance; at PHI_PREVIOUS the
        # previous profile residual while the profile's autocorrelation warms up; at SMALL the
        # small-shift mean charts (up, down), then their allowance and threshold
        self._charts = array(
            "d", [0.0] * 16 + [0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0] + [0.0] * (CHARTS - 24)
        )
        self._tune(0.0)
        self._tune_coarse(0.0)
        self.detections = 0

    def _upgrade_state(self, version: int) -> None:
        """A version 1 record's charts lack the three numbers version 2 appended: the previous
        residual of the autocorrelation's warm-up (0: a profile judging already has its estimate)
        and the day's residuals (0: the day's holiday reading waits for the run to span the rest
        of the day). A version 2 record's lack the small-shift charts (at zero, as after a
        detection) and their tuning (for the autocorrelation the other charts are tuned to).
        Every other field kept its meaning."""
        if version == 1 and len(self._charts) == CHARTS_V1:
            self._charts.extend([0.0] * (CHARTS_V2 - CHARTS_V1))
            version = 2
        if version == 2 and len(self._charts) == CHARTS_V2:
            self._charts.extend([0.0] * (CHARTS - CHARTS_V2))
            self._tune_small(self._phi_used)
        if len(self._charts) != CHARTS:
            raise ValueError(f"seasonal-cusum charts of {len(self._charts)} numbers, {CHARTS} expected")

    # --- time ---------------------------------------------------------------------------

    def _position(self, at: float) -> tuple[int, int, int, int, float]:
        """Visit (absolute local hour) and its bucket, the two buckets around ``at`` and the weight
        of the second (linear interpolation between hour centres)."""
        local = at + 60.0 * self.utc_offset_minutes
        hours = local / 3600.0
        visit = int(hours // 1)
        if self._buckets == 1:
            return visit, 0, 0, 0, 0.0
        base = 0
        day = int(local // 86_400)
        if self._buckets == 48 and ((day + 3) % 7 >= 5 or day == self._day_off):  # 1970-01-01: a Thursday
            base = 24
        centred = hours - 0.5
        first = int(centred // 1)
        weight = centred - first
        return visit, base + visit % 24, base + first % 24, base + (first + 1) % 24, weight

    def _when(self, at: float) -> str:
        if self._buckets == 1:
            return ""
        local = at + 60.0 * self.utc_offset_minutes
        hour = f"{int(local // 3600) % 24:02d}:00"
        if self._buckets == 24:
            return hour
        return f"{DAY_NAMES[(int(local // 86_400) + 3) % 7]} {hour}"

    # --- the update --------------------------------------------------------------------

    @property
    def warming_up(self) -> bool:
        _, _, first, second, _ = self._position(self._at)
        visits = self._visits
        return math.isnan(self._level) or min(visits[first], visits[second]) < self._needed

    def update(self, x: Any, at: float | None = None) -> None:
        if x is None:
            return
        self.n_seen += 1
        self._drift = False
        if not -MAX_MAGNITUDE < x < MAX_MAGNITUDE:
            return  # a sentinel (DBL_MAX, NaN): squared it would overflow the profile and blind it
        if self.transform == "log":
            x = math.log1p(x) if x > 0.0 else 0.0
        if at is not None:
            self._at = at
        if at is None or self._buckets == 1:
            visit, bucket, first, second, weight = self.n_seen // VALUES_PER_VISIT, 0, 0, 0, 0.0
        else:
            # Within a half hour the visit and the two buckets around ``at`` stay the same: only the
            # interpolation weight moves (this runs for every stream of every event).
            # (A half hour lies within one hour: the visit is the current one.)
            hours = (at + 60.0 * self.utc_offset_minutes) * (1.0 / 3600.0)
            if int(hours * 2.0) == self._slot:
                visit, bucket, first, second = self._visit, self._visit_bucket, self._first, self._second
                weight = hours - self._slot_base
            else:
                visit, bucket, first, second, weight = self._position(at)
                self._slot, self._first, self._second = int(hours * 2.0), first, second
                self._slot_base = hours - weight
        if visit != self._visit:
            self._fold()
            if visit // 24 != self._visit // 24:  # a new (local) day: its residuals start over
                self._charts[TODAY] = self._charts[TODAY + 1] = 0.0
            elif at is not None and self._watches_holidays() and self._watch_for_holiday():
                visit, bucket, first, second, weight = self._position(at)  # the weekend's buckets now
            self._visit, self._visit_bucket = visit, bucket
        visits = self._visits
        charts = self._charts
        # Values of a change that may be under way (a chart a quarter of the way to its threshold) do
        # not teach the profile, or a slow or small change would be learnt before it is found.
        learn = self._coarse or (
            charts[0] < LEARN_BELOW * self._h
            and charts[4] < LEARN_BELOW * self._h
            and charts[8] < LEARN_BELOW * self.spread_threshold
        )
        if learn:
            if self._visit_n == 0:
                self._charts[VISIT + 3] = x  # values are accumulated around the visit's first one (precision)
            d = x - self._charts[VISIT + 3]
            self._visit_n += 1
            self._charts[VISIT] += d
            self._charts[VISIT + 1] += d * d
        pooled = self._charts[POOL]
        needed = self._needed
        if visits[first] < needed or visits[second] < needed or self._scale != self._scale:
            ready = False
        elif charts[PHI_SEEN] * (1.0 - self._coarse_phi) < PHI_WARM_UP * (1.0 + self._coarse_phi):
            # not ``_phi_learnt()`` yet (inline: every value runs this test)
            self._learn_profile_phi(x, first, second, weight)
            ready = False
        else:
            ready = True
        if not ready:
            # Both hours around ``at`` need their profile (and the variance level a first visit with
            # some spread; the level is set by then too), and the profile's residuals a first estimate
            # of their autocorrelation: until then, only gross changes against everything seen so far
            # are judged.
            if self._pool_n >= POOL_WARM_UP:
                if not self._coarse:
                    self._switch(coarse=True)
                self._judge(x - pooled, self._charts[POOL + 1], pooled, coarse=True)
            self._pool(x)
            return
        self._pool(x)
        if self._coarse:
            self._switch(coarse=False)
        profile, size = self._profile, self._buckets
        expected = self._level + profile[first] + weight * (profile[second] - profile[first])
        low, high = profile[size + first], profile[size + second]
        var = self._scale * (low + weight * (high - low))
        residual = x - expected
        if learn:
            self._visit_judged += 1
            self._charts[VISIT + 2] += residual * residual
        if self._settle:
            self._settling(residual)
        else:
            self._judge(residual, var, expected, small=at is None or self._buckets == 1)

    def _phi_learnt(self) -> bool:
        """Whether the profile's residuals have taught their autocorrelation: ``PHI_WARM_UP``
        independent values' worth, judged by the pooled residuals' autocorrelation (which the
        cycle inflates: an upper bound, so strongly correlated streams wait long enough)."""
        coarse = self._coarse_phi
        return self._charts[PHI_SEEN] >= PHI_WARM_UP * (1.0 + coarse) / (1.0 - coarse)

    def _learn_profile_phi(self, x: float, first: int, second: int, weight: float) -> None:
        """The profile's residuals teach their AR(1) coefficient before they are charted.

        Charted with an estimate from a few dozen values (0.3 where the truth is 0.9), the
        innovations would still be strongly autocorrelated and the mean charts would climb on
        noise: the first hours a profile judges were where phi-0.9 traffic raised false findings.
        ``_phi_learnt`` says when the estimate is within a few hundredths, which the charts tolerate.
        """
        profile, size = self._profile, self._buckets
        expected = self._level + profile[first] + weight * (profile[second] - profile[first])
        low, high = profile[size + first], profile[size + second]
        var = self._scale * (low + weight * (high - low))
        floor = 1e-18 * (1.0 + expected * expected)
        z = (x - expected) / math.sqrt(var if var > floor else floor)
        z = 1e6 if z > 1e6 else -1e6 if z < -1e6 else z
        charts = self._charts
        self._learn_phi(z, charts[PHI_PREVIOUS], coarse=False)
        charts[PHI_PREVIOUS] = z

    def _pool(self, x: float) -> None:
        n = self._pool_n = self._pool_n + 1
        weight = 1.0 / n if n < POOL_MEMORY else 1.0 / POOL_MEMORY
        delta = x - self._charts[POOL]
        self._charts[POOL] += weight * delta
        self._charts[POOL + 1] = (1.0 - weight) * (self._charts[POOL + 1] + weight * delta * delta)

    def _switch(self, coarse: bool) -> None:
        """Between judging against the pooled level and against the profile: charts start over."""
        self._coarse = coarse
        for i in range(16):
            self._charts[i] = 0.0
        for i in range(SMALL, SMALL + 8):
            self._charts[i] = 0.0
        self._z = 0.0

    def _settling(self, residual: float) -> None:
        """Right after a level change, the next values place the new level (charts rest)."""
        self._settle_sum += residual
        self._settle -= 1
        if not self._settle:
            self._level += self._settle_sum / self._settle_n
            self._settle_sum = 0.0

    def _judge(
        self, residual: float, var: float, expected: float, coarse: bool = False, small: bool = False
    ) -> None:
        """One residual through the charts: standardized, prewhitened, capped."""
        floor = 1e-18 * (1.0 + expected * expected)  # a constant stream: rounding is not a change
        z = residual / math.sqrt(var if var > floor else floor)
        if z > 1e6:
            z = 1e6
        elif z < -1e6:
            z = -1e6
        previous, self._z = self._z, z
        charts = self._charts
        if not coarse:
            charts[TODAY] += z
            charts[TODAY + 1] += 1.0
        # Residuals from the pooled level carry the cycle too, which their own estimate counts as
        # correlation (conservative), kept apart from the profile's. A change under way would
        # look like correlation as well: the estimate rests while a mean chart is half-way up.
        limit = 0.5 * (self._coarse_h if coarse else self._h)
        if charts[0] < limit and charts[4] < limit:
            phi = self._learn_phi(z, previous, coarse)
        else:
            phi = self._coarse_phi if coarse else self._phi
        e = (z - phi * previous) / math.sqrt(1.0 - phi * phi)
        e = e if -CAP < e < CAP else math.copysign(CAP, e)
        e2 = e * e
        # A chart at zero that gets no positive increment stays at zero: the step is skipped
        # (most values, most charts: this runs for every stream of every event).
        if coarse:
            k, h = self._coarse_k, self._coarse_h
        else:
            h, k = self._h, self._k
        alarm = False
        up, down = e - k, -e - k
        if up > 0.0 or charts[0]:
            alarm = _step(charts, 0, up, z, h)
        if down > 0.0 or charts[4]:
            alarm = _step(charts, 4, down, z, h) or alarm
        if small:  # a profile without a cycle, precise enough for charts tuned to SMALL_SHIFT
            small_k, small_h = charts[SMALL + 8], charts[SMALL + 9]
            up, down = e - small_k, -e - small_k
            if up > 0.0 or charts[SMALL]:
                alarm = _step(charts, SMALL, up, z, small_h) or alarm
            if down > 0.0 or charts[SMALL + 4]:
                alarm = _step(charts, SMALL + 4, down, z, small_h) or alarm
        if not coarse:
            if self._stuck and e2 > 1.0:
                self._stuck = False  # it varies again: the spread-down chart watches once more
            spread = e2 - self.spread_slack
            if spread > 0.0 or charts[8]:
                alarm = _step(charts, 8, spread, z, self.spread_threshold) or alarm
            shrink = 0.0 if self._stuck else self.shrink_slack - e2
            if shrink > 0.0 or charts[12]:
                alarm = _step(charts, 12, shrink, z, self.shrink_threshold) or alarm
        if alarm:
            self._detect(var, coarse)

    def _learn_phi(self, z: float, previous: float, coarse: bool) -> float:
        """AR(1) coefficient of the residuals, learnt with a memory of ~2000 values.

        Moments are taken around the residuals' own running mean, so that a shift of the level
        (a change, or a profile slightly off) is not mistaken for correlation.
        """
        moments = self._charts
        at = 20 if coarse else 16
        mean, variance, covariance = moments[at], moments[at + 1], moments[at + 2]
        n = moments[at + 3] + 1.0
        alpha = 1.0 / n if n < 2000.0 else 0.0005
        zc = z - mean if -CAP < z < CAP else math.copysign(CAP, z) - mean
        pc = previous - mean if -CAP < previous < CAP else math.copysign(CAP, previous) - mean
        variance += alpha * (zc * zc - variance)
        covariance += alpha * (zc * pc - covariance)
        moments[at] = mean + alpha * zc
        moments[at + 1] = variance
        moments[at + 2] = covariance
        moments[at + 3] = n
        phi = covariance / variance if variance > 0.0 else 0.0
        phi = 0.0 if phi < 0.0 else self.max_phi if phi > self.max_phi else phi
        if coarse:
            if abs(phi - self._coarse_phi) > 0.02:
                self._coarse_phi = phi
                self._tune_coarse(phi)
            return self._coarse_phi
        self._phi = phi
        if abs(phi - self._phi_used) > 0.02:
            self._tune(phi)
        return phi

    def _tune(self, phi: float) -> None:
        """Allowance and threshold of the mean charts for the current autocorrelation."""
        k = 0.5 * self.shift * math.sqrt((1.0 - phi) / (1.0 + phi))
        self._k = k
        self._h = _siegmund_threshold(k, self.mean_arl)
        self._phi_used = phi
        self._tune_small(phi)
        self._visits_needed()

    def _tune_small(self, phi: float) -> None:
        """Allowance and threshold of the small-shift charts (``SMALL_SHIFT``, ``SMALL_ARL``)."""
        k = 0.5 * SMALL_SHIFT * math.sqrt((1.0 - phi) / (1.0 + phi))
        self._charts[SMALL + 8] = k
        self._charts[SMALL + 9] = _siegmund_threshold(k, SMALL_ARL)

    def _visits_needed(self) -> None:
        """Visits a bucket needs before its profile judges: ``min_visits``, and more when the
        values are autocorrelated (an hour of them then carries fewer independent ones, and a
        profile of two noisy hours would take its own error for a change): one more per 6 of
        the variance inflation ``(1 + phi) / (1 - phi)`` of the profile's or the pooled
        residuals, whichever is larger (phi 0.8: 3 visits, 0.9: 5)."""
        phi = max(self._phi, self._coarse_phi)
        self._needed = self.min_visits + int((1.0 + phi) / (1.0 - phi) / 6.0)

    def _tune_coarse(self, phi: float) -> None:
        """The same for the charts that judge against the pooled level while the profile is learnt.

        Heavy tails are not known yet either: at least ``COARSE_RUN`` far-out values in a row.
        """
        k = 0.5 * COARSE_SHIFT * math.sqrt((1.0 - phi) / (1.0 + phi))
        self._coarse_k = k
        self._coarse_h = max(_siegmund_threshold(k, self.mean_arl), COARSE_RUN * (CAP - k))
        self._visits_needed()

    def _fold(self) -> None:
        """The visit that just ended becomes part of its bucket's profile and of the level.

        The bucket learns the visit's mean (relative to the level) and its mean squared
        residual (relative to the variance level ``_scale``); the level and the
        variance level learn what the bucket's profile did not explain. Values judged
        against an expectation contribute their squared residual, which includes the
        profile's own error; values of a warming-up bucket their spread around the
        visit's mean.
        """
        n = self._visit_n
        if n == 0:
            return
        judged = self._visit_judged
        offset = self._charts[VISIT] / n
        mean = self._charts[VISIT + 3] + offset
        within = max(0.0, self._charts[VISIT + 1] / n - offset * offset)
        # Autocorrelated values vary less around their own hour's mean than around the level: the
        # mean takes ``inflation / n`` of their variance with it (a tenth for an hour at phi 0.9).
        # Uncorrected, every bucket learnt while warming up would expect a spread too narrow.
        phi = self._phi if self._phi_learnt() else max(self._phi, self._coarse_phi)
        independent = n * (1.0 - phi * phi) / (1.0 + phi * phi)
        within /= 1.0 - min(0.5, (1.0 + phi) / (1.0 - phi) / n)
        square = (self._charts[VISIT + 2] + within * (n - judged)) / n
        level = self._level
        if level != level:  # the very first visit sets the level
            level = self._level = mean
        bucket = self._visit_bucket
        count = self._visits[bucket]
        if count >= self._needed and self._scale == self._scale and judged == n:
            # A visit far from what the bucket expects is a change under way (found by the charts,
            # which then accept it), not a lesson: learnt, it would hide a small shift.
            usual = level + (self._profile[bucket] if self._buckets > 1 else 0.0)
            var = self._scale * self._profile[self._buckets + bucket] * (1.0 + self._phi) / (1.0 - self._phi)
            if (mean - usual) ** 2 > VISIT_GATE * VISIT_GATE * var / n:
                self._visit_n = self._visit_judged = 0
                self._charts[VISIT] = self._charts[VISIT + 1] = self._charts[VISIT + 2] = 0.0
                return
        memory = self.profile_visits if self._buckets > 1 else UNCYCLED_VISITS
        weight = max(1.0 / (count + 1), 1.0 / memory)
        shape = self._profile
        spread_at = self._buckets + bucket
        cyclic = self._buckets > 1
        if cyclic:
            shape[bucket] += weight * (mean - level - shape[bucket])
        else:  # one bucket: its shape would only duplicate the level (and learn twice as fast)
            self._level += weight * (mean - level)
        # A variance from a few values is rough (+-35% from 16): it moves the bucket's spread from its
        # prior, the variance level, in proportion to the values behind it.
        if self._scale != self._scale:
            if n < 2 or within <= 0.0:
                self._visit_n = self._visit_judged = 0
                self._charts[VISIT] = self._charts[VISIT + 1] = self._charts[VISIT + 2] = 0.0
                return  # the variance level needs a visit with some spread first
            self._scale = within
        # Autocorrelated values vary together: an hour of them holds fewer independent squares
        # (at phi 0.9, 180 values are worth ~19 for a variance), so the prior keeps more weight.
        credible = independent / (independent + SPREAD_PRIOR_VALUES)
        shape[spread_at] += weight * credible * (square / self._scale - shape[spread_at])
        if count < 255:
            self._visits[bucket] = count + 1
        if cyclic and count:
            memory = 1.0 - math.exp(-1.0 / self.level_hours)
            self._level += memory * (mean - level - shape[bucket])
            if shape[spread_at] > 0.0:
                self._scale += memory * (square / shape[spread_at] - self._scale)
        self._visit_n = self._visit_judged = 0
        self._charts[VISIT] = self._charts[VISIT + 1] = self._charts[VISIT + 2] = 0.0

    def _detect(self, var: float, coarse: bool) -> None:
        """Describe the change against what was expected, then accept the new regime.

        The evidence is the run of the alarming chart since it last stood at zero:
        values since the change, their mean and spread in the usual standard deviations.
        """
        charts = self._charts
        if coarse:
            limits = (self._coarse_h, self._coarse_h, math.inf, math.inf, math.inf, math.inf)
        else:
            small_h = charts[SMALL + 9]
            limits = (self._h, self._h, self.spread_threshold, self.shrink_threshold, small_h, small_h)
        index = max(range(6), key=lambda i: charts[OFFSETS[i]] - limits[i])
        inflation = (1.0 + self._phi) / (1.0 - self._phi)  # of the variance of a mean of correlated values
        if index == 2:
            # A jump of the level fills the spread chart too (its first values are far out). When the
            # mean chart pointing the same way has a significant run, the level moved: report and
            # accept that (a spread that changed as well is found once the new level is in place).
            candidate = 0 if charts[0] >= charts[4] else 1
            values = charts[4 * candidate + 1]
            halfway = charts[4 * candidate] > 0.5 * self._h
            if halfway and charts[4 * candidate + 2] ** 2 / values > 9.0 * inflation:
                index = candidate
        at = OFFSETS[index]
        n, sum_z, sum_z2 = charts[at + 1], charts[at + 2], charts[at + 3]
        shift = sum_z / n
        spread = max(0.0, sum_z2 / n - shift * shift)  # variance around the new level, in usual units
        moved = index in (0, 1, 4, 5)
        chart = ("mean-up", "mean-down", "spread-up", "spread-down", "mean-up", "mean-down")[index]
        ratio = math.sqrt(spread)
        sd = math.sqrt(var)
        _, _, first, second, weight = self._position(self._at)
        profile = self._profile
        expected = self._level + profile[first] + weight * (profile[second] - profile[first])
        if coarse:
            expected = self._charts[POOL]
        after = expected + shift * sd if moved else expected
        usual = {"mean": expected, "sd": sd}
        now = {"n": n, "mean": after, "sd": sd * ratio}
        if self.transform == "log":  # back to the stream's own units
            usual = {"mean": math.expm1(expected), "sd": math.exp(expected) * sd}
            now = {"n": n, "mean": math.expm1(after), "sd": math.exp(after) * sd * ratio}
        self._evidence = {
            "chart": chart,
            "reference": {"n": float(sum(self._visits)), **usual},
            "window": now,
            "shift_sigmas": shift,
            "spread_ratio": ratio,
            "events_since_change": int(n),
            "change_located": True,
            "statistic": charts[at],
            "expected": {
                "when": "" if coarse else self._when(self._at),
                "learning": coarse,
                "seasonality": self.seasonality,
                "transform": self.transform,
                "level": usual["mean"],
                "sd": usual["sd"],
                "autocorrelation": self._phi,
            },
        }
        moved_by = shift * sd
        if moved and not coarse and self._like_a_weekend(moved_by, sd, n):
            # A holiday: the rest of the day is judged against the weekend's profile, silently.
            self._drift = False
            self._take_day_off()
            return
        # A level that comes back to where it was before the last change (a transient incident
        # resolved) is accepted silently: the change was reported when it began.
        # "Back": the new level is closer to the one before the last change than to the last one.
        back = moved_by * self._moved < 0.0 and abs(moved_by + self._moved) < abs(self._moved)
        self._drift = not (moved and not coarse and back)
        self._moved = 0.0 if back else moved_by if moved else self._moved
        if self._drift:
            self.detections += 1
        # Accept the new regime, so one change yields one detection. The run since the change may
        # start before it: its mean is a first guess of the new level, which the next values settle.
        if moved and coarse:
            if self._level == self._level:
                self._level += shift * sd
            self._pool_n = 0  # the pooled statistics start over in the new regime
        elif moved:
            self._level += shift * sd
            # A short run (or strongly correlated values) places the level roughly: the next values
            # (as many as make SETTLE independent ones) place it better.
            needed = int(SETTLE * inflation)
            if n < needed:
                self._settle = self._settle_n = needed
        if index == 2:
            # A spread-up alarm whose run measures a spread under the usual (a short burst of
            # innovations the charts found too large) keeps the variance: accepting the ratio would
            # tighten the very variance that alarmed, and the next burst would alarm sooner.
            self._scale *= max(1.0, spread)
        elif index == 3:
            # A stream that stopped varying is reported once; its usual spread is kept (accepting a
            # spread near zero would make every later wobble of the profile an alarm).
            self._stuck = True
        self._clear_charts()

    def _clear_charts(self) -> None:
        charts = self._charts
        for i in range(16):
            charts[i] = 0.0
        for i in range(SMALL, SMALL + 8):
            charts[i] = 0.0
        self._z = 0.0
        # This hour's values so far straddle the change: the profile learns from the rest of it.
        self._visit_n = self._visit_judged = 0
        charts[VISIT] = charts[VISIT + 1] = charts[VISIT + 2] = 0.0

    def _like_a_weekend(self, moved_by: float, sd: float, run: float) -> bool:
        """Whether a weekday's level moved to where the weekend's usually is at this hour (within
        ``HOLIDAY_BAND`` of the weekday-weekend gap, a gap of at least a quarter sd): a holiday,
        not a change.

        The level is read twice: the mean of the alarming run (``moved_by``), and, when that run
        spans most of the local day so far (a change that began with the day, as a holiday does),
        the mean of the day's residuals. The run's mean is biased away from zero when the shift is
        small (the chart alarms on the runs that happened to climb fast); the day's mean is not,
        and a change that began later in the day is diluted in it, so it is not read then.

        A real change that happens to look like a weekend is found the next day, when the
        weekday's profile judges again.

        A detector that shares its model's judgement (``share_day``) does not decide alone: most
        of the model's streams must lean towards their weekend levels too (``ModelDay``), and
        when this stream's own reading does not settle it (its alarm came early in the day, on a
        run whose mean overstates a small shift), their combined evidence must. One stream moving
        is a change of that stream, not a holiday.
        """
        place = self._holiday_place()
        if place is None:
            return False
        first, weight = place
        gap = self._weekend_gap(first, weight)
        model, day = self._model_day, self._local_day()
        if (
            model is not None
            and abs(gap) > 0.25 * sd
            and moved_by * gap > 0.0
            and model.looks_like_a_weekend(day)
        ):
            return True
        if abs(gap) > 0.25 * sd and abs(moved_by - gap) < HOLIDAY_BAND * abs(gap):
            alone = True
        else:
            alone = self._day_like_a_weekend(first, weight, sd, run, HOLIDAY_RUN)
        return alone and (model is None or model.looks_like_a_weekend(day, least_evidence=0.0))

    def _holiday_place(self) -> tuple[int, float] | None:
        """Where ``at`` lies in the weekday profile (first bucket, weight of the next) when it can be
        a holiday: a weekday not yet taken for one, whose weekend hours have been seen."""
        local = self._at + 60.0 * self.utc_offset_minutes
        day = int(local // 86_400)
        if self._buckets != 48 or (day + 3) % 7 >= 5 or day == self._day_off:
            return None
        _, _, first, second, weight = self._position(self._at)
        if min(self._visits[first + 24], self._visits[second + 24]) < self.min_visits:
            return None
        return first, weight

    def _day_like_a_weekend(self, first: int, weight: float, sd: float, run: float, share: float) -> bool:
        """Whether the day's mean residual lies where the weekend's usually is: clearly (``HOLIDAY_Z``
        standard errors, inflated for autocorrelation, from the weekday's profile), after
        ``HOLIDAY_HOURS`` of the day, and when the run of the chart pointing that way spans at
        least ``share`` of the day's values (the change began with the day)."""
        today, values = self._charts[TODAY], self._charts[TODAY + 1]
        phi = self._phi
        if not values or today * today < HOLIDAY_Z * HOLIDAY_Z * values * (1.0 + phi) / (1.0 - phi):
            return False
        local_hour = int((self._at + 60.0 * self.utc_offset_minutes) // 3600) % 24
        if local_hour < HOLIDAY_HOURS or run < share * values:
            return False
        gap = self._day_gap(first, weight)
        return abs(gap) > 0.25 * sd and abs(today / values * sd - gap) < HOLIDAY_BAND * abs(gap)

    def _watches_holidays(self) -> bool:
        """Holidays exist in a weekly profile that judges (not while it settles a new level)."""
        return self._buckets == 48 and not (self._coarse or self._settle)

    def _watch_for_holiday(self) -> bool:
        """At each hour of a weekday: whether the day so far clearly looks like a weekend day, from
        its start (the chart pointing that way has run for ``HOLIDAY_DAY_RUN`` of the day's values;
        ``_day_like_a_weekend``). Then the rest of the day is judged against the weekend's profile,
        silently.

        A holiday shifts a feature by about the weekday-weekend gap, which at phi 0.9 is barely
        more than the mean charts are tuned to: they alarm hours into the day, on whichever run
        climbed fastest, so that run's mean overstates the shift and falls outside the holiday
        band. The day's own mean, read hour by hour, settles the question earlier and without
        that bias. A real change of a few times the gap is found within the hour, before the day
        could pass for a holiday.

        A detector that shares its model's judgement (``share_day``) follows once another stream
        of the model took the day for a holiday and its own day so far leans the same way (a
        stream whose weekend is like its weekdays keeps the better-learnt weekday profile), and
        decides on its own reading only when most of the model's streams lean that way
        (``ModelDay``): one stream moving is not a holiday.
        """
        charts = self._charts
        today = charts[TODAY]
        place = self._holiday_place()
        if place is None:
            return False
        model, day = self._model_day, self._local_day()
        if model is not None and model.took_off(day):
            reading = self.day_reading(day)
            if reading is None or not reading[1]:
                return False
            self._take_day_off()
            return True
        first, weight = place
        sd = self._weekday_sd(first, weight)
        run = charts[1] if today > 0.0 else charts[5]
        if not self._day_like_a_weekend(first, weight, sd, run, HOLIDAY_DAY_RUN):
            return False
        if model is not None and not model.looks_like_a_weekend(day, least_evidence=0.0):
            return False
        self._take_day_off()
        return True

    def _weekday_sd(self, first: int, weight: float) -> float:
        """The weekday profile's standard deviation at ``first`` + ``weight`` (``_holiday_place``)."""
        profile, second = self._profile, (first + 1) % 24
        spread = profile[48 + first] + weight * (profile[48 + second] - profile[48 + first])
        return math.sqrt(max(self._scale * spread, 0.0))

    def _local_day(self) -> int:
        return int((self._at + 60.0 * self.utc_offset_minutes) // 86_400)

    def share_day(self, day: ModelDay) -> None:
        """Judge holidays with the model's other numeric streams (``ModelDay``), not alone.

        Only a weekly profile knows weekends; other seasonalities do not join."""
        if self._buckets == 48:
            day.members.append(self)
            self._model_day = day

    @property
    def day_off(self) -> int:
        """The local day (days since 1970-01-01) judged against the weekend's profile, or -1."""
        return self._day_off

    def day_reading(self, day: int) -> tuple[float, bool] | None:
        """How local day ``day`` so far reads for the model's holiday judgement (``ModelDay``): the
        log-likelihood ratio of the day's mean residual under "a weekend day" (the weekday-weekend
        gap averaged over the day's hours) against "a weekday" (0), its variance inflated for
        autocorrelation; and whether that mean lies nearer the weekend's level than the weekday's
        (or beyond it: a gap learnt from a few weekends can be off by half of itself).

        No say (None) on another day or a weekend day, while the profile warms up or has not seen
        this hour's weekend yet, before any of the day's values were judged, or when this
        stream's weekend lies within a quarter sd of its weekdays (it cannot tell them apart).
        """
        if self._coarse or self._local_day() != day:
            return None
        place = self._holiday_place()
        values = self._charts[TODAY + 1]
        if place is None or not values:
            return None
        sd = self._weekday_sd(*place)
        if sd <= 0.0:
            return None
        gap = self._day_gap(*place) / sd
        if abs(gap) <= 0.25:
            return None
        mean = self._charts[TODAY] / values
        inflation = (1.0 + self._phi) / (1.0 - self._phi)
        evidence = values * gap * (mean - 0.5 * gap) / inflation
        return evidence, mean / gap > 0.5

    def _take_day_off(self) -> None:
        """The rest of the local day is judged against the weekend's profile: a holiday."""
        self._day_off = self._local_day()
        self._slot = -1  # the cached place in the profile is the weekday's
        self._clear_charts()

    def _day_gap(self, first: int, weight: float) -> float:
        """The weekday-weekend gap averaged over the local day so far, hour by hour: what the day's
        mean residual is when the whole day looks like a weekend day."""
        profile, visits, floor = self._profile, self._visits, self.min_visits
        now = first + 1 if weight >= 0.5 else first  # the hour ``at`` lies in
        total = count = 0.0
        for hour in range(now % 24 + 1):
            if visits[hour + 24] >= floor and visits[hour] >= floor:
                total += profile[hour + 24] - profile[hour]
                count += 1.0
        return total / count if count else 0.0

    def _weekend_gap(self, first: int, weight: float) -> float:
        """How far the weekend's profile lies above the weekday's around this hour: the gap of each
        hour within ``GAP_HOURS`` of it, weighted by closeness.

        One hour's gap rests on the few weekend days seen, and at phi 0.9 an hour of values is
        worth ~10 independent ones: alone it is off by a quarter sd, more than the holiday band.
        Neighbouring hours' shapes are learnt from other values, so their mean is steadier; the
        weekend's pattern changes slowly over a few hours.
        """
        profile, visits, floor = self._profile, self._visits, self.min_visits
        total = weights = 0.0
        for step in range(-GAP_HOURS, GAP_HOURS + 2):
            hour = (first + step) % 24
            if visits[hour + 24] < floor or visits[hour] < floor:
                continue
            closeness = GAP_HOURS + 1.0 - abs(step - weight)
            if closeness <= 0.0:
                continue
            total += closeness * (profile[hour + 24] - profile[hour])
            weights += closeness
        return total / weights if weights else 0.0

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"seasonality": "none", "min_visits": 1, "mean_arl": 1e4}


def _step(charts: array[float], at: int, increment: float, z: float, threshold: float) -> bool:
    """One CUSUM step of the chart at ``at``: statistic, then values, sum and sum of squares of ``z``
    since it last stood at zero. True when it crosses ``threshold``."""
    value = charts[at] + increment
    if value <= 0.0:
        charts[at] = charts[at + 1] = charts[at + 2] = charts[at + 3] = 0.0
        return False
    charts[at] = value
    charts[at + 1] += 1.0
    charts[at + 2] += z
    charts[at + 3] += z * z
    return value > threshold


def _siegmund_threshold(k: float, arl: float) -> float:
    """Decision interval ``h`` of a one-sided CUSUM of N(0, 1) values with allowance ``k`` and
    in-control average run length ``arl`` (Siegmund: ARL = (e^(2kb) - 2kb - 1) / 2k^2, b = h + 1.166).
    """
    low, high = 0.0, 1e4
    for _ in range(60):
        b = (low + high) / 2
        x = 2.0 * k * b
        run = (math.exp(min(x, 700.0)) - x - 1.0) / (2.0 * k * k) if k > 0 else b * b
        if run < arl:
            low = b
        else:
            high = b
    return max(0.5, high - 1.166)


register(SeasonalCUSUM)
