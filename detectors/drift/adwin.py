"""river's ADWIN behind the project's API, for mean shifts of slowly varying streams."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from statistics import fmean
from typing import Any, ClassVar

from detectors.base import DriftDetector, InputKind
from detectors.registry import register

MAX_MAGNITUDE = 1e100
"""Larger values (sentinels such as DBL_MAX) are skipped: squared they overflow ADWIN's
variance and would blind it for good."""


class ADWINMeanShift(DriftDetector):
    """ADWIN (adaptive windowing) with a warm-up and a cool-down.

    ADWIN keeps a variable-length window and cuts it when two sub-windows' means
    differ more than the Hoeffding-style bound for ``delta`` allows. Measured with
    river 0.26.1 (30 seeds): no false alarms per 10k stationary values and a median
    delay of 47 values on a 1-sigma mean shift, but it watches the mean only (a
    variance doubling is found half the time) and it is scale-free only in the
    bound, not in its sensitivity to outliers. ``normal-scores-cusum`` is the default
    for features; ADWIN stays available for streams where a self-adjusting window
    matters more than speed of detection.

    Parameters
    ----------
    delta
        ADWIN's confidence; smaller is fewer false alarms and later detections.
    reference_size
        Values before the first signal may be raised.
    cooldown
        Values after a signal during which ADWIN's further cuts (it re-cuts while a
        ramp continues) are not signalled again.
    recent
        Raw values kept to describe the new regime.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> detector = ADWINMeanShift()
    >>> hits = []
    >>> for i in range(2000):
    ...     detector.update(rng.gauss(0.0, 1.0) + (3.0 if i >= 1000 else 0.0))
    ...     if detector.drift_detected:
    ...         hits.append(i)
    >>> len(hits), 1000 < hits[0] < 1100
    (1, True)
    """

    input_kind: ClassVar[InputKind] = "numeric"

    registry_name = "adwin"
    PARAMS = ("delta", "reference_size", "cooldown", "recent")

    def __init__(
        self, delta: float = 0.002, reference_size: int = 256, cooldown: int = 1000, recent: int = 32
    ) -> None:
        self.delta = delta
        self.reference_size = reference_size
        self.cooldown = cooldown
        self.recent = recent
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        from river import drift  # here, not at import: river pulls in scipy (~1.4 s)

        self._adwin = drift.ADWIN(delta=self.delta)
        self._recent: deque[float] = deque(maxlen=self.recent)
        self._quiet_until = 0
        self.detections = 0

    @property
    def warming_up(self) -> bool:
        return self.n_seen < self.reference_size

    def update(self, x: Any, at: float | None = None) -> None:
        if x is None or not -MAX_MAGNITUDE <= x <= MAX_MAGNITUDE:
            return
        value = float(x)
        adwin = self._adwin
        before, width = adwin.estimation, adwin.width
        adwin.update(value)
        self._recent.append(value)
        self.n_seen += 1
        self._drift = False
        if not adwin.drift_detected or self.n_seen <= self.reference_size or self.n_seen < self._quiet_until:
            return
        self._quiet_until = self.n_seen + self.cooldown
        after = fmean(self._recent)
        self.detections += 1
        self._evidence = {
            "chart": "mean-up" if after > before else "mean-down",
            "reference": {"n": float(width), "mean": before},
            "window": {"n": float(len(self._recent)), "mean": after},
            "events_since_change": len(self._recent),
            "change_located": False,
            "statistic": abs(after - before),
        }
        self._drift = True

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"delta": 0.01, "reference_size": 50, "cooldown": 100}


register(ADWINMeanShift)
