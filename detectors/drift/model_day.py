"""Whether today looks like a weekend day, judged once per model from all of its numeric streams."""

from __future__ import annotations

from typing import Protocol

HOLIDAY_SHARE = 0.6
"""Share of the streams with a say whose day so far lies nearer their weekend level than their
weekday level, for the day to be taken for a holiday: with five, three."""
HOLIDAY_EVIDENCE = 4.6
"""Log-likelihood ratio (weekend day against weekday, summed over the streams with a say) the
day's means must reach when no stream's own reading settles it: ~100 to 1 for a weekend-like day."""


class DayWitness(Protocol):
    """A stream's detector that can say how its day so far compares with its weekend profile."""

    @property
    def day_off(self) -> int:
        """The local day it judges against the weekend's profile (a holiday), or -1."""
        ...

    def day_reading(self, day: int) -> tuple[float, bool] | None:
        """For local day ``day``: the log-likelihood ratio of the day's mean under "a weekend day"
        against "a weekday", and whether that mean lies nearer the weekend's level; None when
        the stream has no say (another day, a weekend, a profile that cannot judge yet, or a
        weekend level too close to the weekday's to tell them apart)."""
        ...


class ModelDay:
    """One model's judgement of whether today is a holiday (a weekday that looks like a weekend).

    A holiday moves every stream whose weekend differs from its weekdays towards its
    weekend level, all at once and from the start of the day. One stream cannot tell
    that from a change of about the weekday-weekend gap, least of all on autocorrelated
    traffic (at phi 0.9 an hour of values holds ~10 independent ones, so a 0.5 sd gap is
    read with an error of 0.3 sd): deciding alone, each stream reported the holiday
    feature by feature, early in the day, or took a single feature's change for one. The
    model's numeric streams (features, score, latency, tokens) are witnesses of the same
    day. It is taken for a holiday when

    - at least ``HOLIDAY_SHARE`` of the streams with a say lie nearer their weekend level
      than their weekday level (one stream moving is a change of that stream, not a
      holiday), and
    - either their combined evidence clearly favours a weekend-like day
      (``HOLIDAY_EVIDENCE``: asked when a stream's chart alarms towards its weekend level),
      or the asking stream's own day already reads as a weekend day by the single-stream
      rules of ``seasonal-cusum`` and the combined evidence leans that way.

    Streams follow once one of them took the day. It is not judged hour by hour on the
    combined evidence alone: a weekday on which most features merely run high (a level
    that lags a ramp, after a weekend) would be taken off again and again, teaching the
    weekend's profile weekdays and the weekdays' nothing. A real change that moves most
    streams of a model towards their weekend levels at once is judged as a holiday, and
    found the next day, when weekday profiles judge again.

    The object holds no state of its own: the readings come from the streams' detectors
    (their day's residuals, profiles and autocorrelation, all in their saved state) and
    the decision, once taken, is each detector's ``day_off``. It is rebuilt with the
    model, and a restored model's detectors join a new one. Detectors of other models
    never join (no state is shared between models).
    """

    __slots__ = ("members",)

    def __init__(self) -> None:
        self.members: list[DayWitness] = []

    def join(self, detector: object) -> None:
        """Let ``detector`` consult this model's judgement, when it judges holidays at all
        (``share_day``: ``seasonal-cusum``); other detectors are left alone."""
        share = getattr(detector, "share_day", None)
        if share is not None:
            share(self)

    def took_off(self, day: int) -> bool:
        """Whether a stream of the model took local day ``day`` for a holiday: the others follow."""
        return any(member.day_off == day for member in self.members)

    def looks_like_a_weekend(self, day: int, least_evidence: float = HOLIDAY_EVIDENCE) -> bool:
        """Whether local day ``day`` (a weekday) looks like a weekend day for this model so far
        (``least_evidence``: a stream that already judged its own day weekend-like asks only that
        most streams lean that way and their evidence, together, favours it).

        Once a stream took the day for a holiday, it stays one (the day's readings move once a
        stream has switched to its weekend profile)."""
        if self.took_off(day):
            return True
        voters = nearer = 0
        evidence = 0.0
        for member in self.members:
            reading = member.day_reading(day)
            if reading is None:
                continue
            voters += 1
            evidence += reading[0]
            nearer += reading[1]
        return voters > 0 and nearer >= HOLIDAY_SHARE * voters and evidence >= least_evidence
