"""The tiny base API every detector follows, in river's shape.

Hyperparameters are ``__init__`` arguments stored unchanged as public attributes;
all mutable state is built in ``_reset()``, so ``clone()`` (a fresh detector with the
same hyperparameters) and ``_reset()`` cannot disagree about what "fresh" means.
Two families:

- ``DriftDetector``: one value at a time through ``update(x, at)``; ``drift_detected``
  is true right after the value that confirmed a change. A detector collects a
  reference sample first (``warming_up``) and never signals before it has one;
  after a signal it re-learns its reference from the new regime, so it does not
  fire again on every following value. ``at`` is the event's own time (epoch
  seconds): detectors that follow a daily or weekly cycle read the phase of the
  cycle from it, the others ignore it.
- ``AnomalyDetector``: ``score_one(x)`` (higher is more anomalous) and
  ``learn_one(x)`` over a dict of numeric features.

``None`` is a missing value: it leaves a detector's state untouched. Every class
lists the hyperparameters the contract tests try in ``_unit_test_params()`` and says
which kind of input it takes in ``input_kind``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal, Self

InputKind = Literal["numeric", "binary", "categorical", "features"]


class Detector:
    """Common machinery: parameters, cloning, reset, repr.

    The base classes declare ``__slots__`` so that a detector on the per-value hot
    path can be slots-only (faster attribute access, less memory); subclasses that
    declare none get a ``__dict__`` as usual.
    """

    __slots__ = ()
    input_kind: ClassVar[InputKind]
    registry_name: ClassVar[str]
    """The name configuration files use for the detector (``detectors/registry.py``)."""
    PARAMS: ClassVar[tuple[str, ...]] = ()
    """The ``__init__`` parameters, each kept as the attribute of the same name: what
    ``clone`` passes on and ``repr`` shows. Declared, not read from the signature, because
    a compiled ``__init__`` has none to read; the contract tests hold the two together."""
    STATE_VERSION: ClassVar[int] = 1
    """Version of the class's state format (``detectors/state.py``): bumped when it changes."""
    STATE_UPGRADES: ClassVar[frozenset[int]] = frozenset()
    """Earlier state versions whose records ``_upgrade_state`` brings to this one (same fields);
    a record of any other version is refused."""
    STATE_FIELDS: ClassVar[tuple[str, ...] | None] = None
    """Attributes that make up the state, in the order a state record lists them;
    ``None``: not savable (a restored partition warms this key up again)."""
    LINKS: ClassVar[frozenset[str]] = frozenset()
    """Attributes that link the detector to objects its owner shares between detectors (a model's
    holiday judgement, ``ModelDay``): not state, rebuilt by the owner after a restore."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """Build every piece of mutable state from scratch."""

    def _upgrade_state(self, version: int) -> None:
        """Bring the fields just restored from a record of ``version`` (one of ``STATE_UPGRADES``)
        to this version's meaning."""

    def _get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.PARAMS}

    def clone(self) -> Self:
        """A fresh detector with the same hyperparameters and no state."""
        return type(self)(**self._get_params())

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        """Hyperparameter sets the contract tests run this detector with."""
        yield {}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({params})"


class DriftDetector(Detector):
    """A change detector over a univariate stream.

    Subclasses set ``_drift`` in ``update`` and fill ``_evidence`` with the window
    statistics that prove a detection (what changed, by how much, since when).
    """

    __slots__ = ("_drift", "_evidence", "n_seen")
    _drift: bool
    _evidence: dict[str, Any]

    def _reset(self) -> None:
        self._drift = False
        self._evidence = {}
        self.n_seen = 0

    def update(self, x: Any, at: float | None = None) -> None:
        raise NotImplementedError

    @property
    def drift_detected(self) -> bool:
        return self._drift

    @property
    def warming_up(self) -> bool:
        """True while the detector is still building its reference (no signals)."""
        raise NotImplementedError

    @property
    def evidence(self) -> Mapping[str, Any]:
        """Statistics of the last detection: reference vs. the window since the change."""
        return self._evidence


class AnomalyDetector(Detector):
    """Scores how unusual a dict of numeric features is; learns as it goes."""

    __slots__ = ()
    input_kind: ClassVar[InputKind] = "features"

    def learn_one(self, x: Mapping[str, float | None]) -> None:
        raise NotImplementedError

    def score_one(self, x: Mapping[str, float | None]) -> float:
        raise NotImplementedError
