"""One battery of checks over every registered detector (river's ``check_estimator`` idea).

A detector joins the battery by being registered; each runs once per hyperparameter
set its ``_unit_test_params()`` yields. What a user relies on: the same input gives
the same output, a pickled detector (a snapshot) carries on exactly where it was,
``_reset()`` really starts over, memory does not grow with the stream, and missing
values change nothing.
"""

from __future__ import annotations

import ast
import base64
import pickle
from typing import Any

import orjson
import pytest

from detectors import REGISTRY, AnomalyDetector, Detector, DriftDetector, create, state
from detectors.drift.seasonal_cusum import SMALL
from tests.unit.detectors.sources import module_source
from tests.unit.detectors.streams import stream

CASES = [
    pytest.param(name, params, id=f"{name}-{i}")
    for name, cls in sorted(REGISTRY.items())
    for i, params in enumerate(cls._unit_test_params())
]


def feed(detector: Detector, values: list[Any]) -> list[Any]:
    """What a user observes per value: drift flags with evidence, or anomaly scores."""
    out: list[Any] = []
    for x in values:
        if isinstance(detector, DriftDetector):
            detector.update(x)
            out.append((True, dict(detector.evidence)) if detector.drift_detected else False)
        else:
            assert isinstance(detector, AnomalyDetector)
            out.append(detector.score_one(x))
            detector.learn_one(x)
    return out


def make(name: str, params: dict[str, Any]) -> Detector:
    return create(name, params)


def class_source(cls: type[Detector]) -> ast.ClassDef:
    """The class as written: a compiled class has no signature to inspect and no ``__doc__``."""
    tree = ast.parse(module_source(cls.__module__))
    (klass,) = (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    return klass


def init_defaults(cls: type[Detector]) -> dict[str, Any]:
    """``__init__``'s parameters and their defaults, read from the class's source."""
    klass = class_source(cls)
    (init,) = (n for n in klass.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    names = [a.arg for a in init.args.args[1:]]
    defaults = [ast.literal_eval(d) for d in init.args.defaults]
    assert len(defaults) == len(names), f"{cls.__name__}: every hyperparameter needs a default"
    return dict(zip(names, defaults, strict=True))


def attributes(detector: Detector) -> set[str]:
    """The instance attributes ``detector`` holds: slotted, native (a compiled class lists
    them in ``__mypyc_attrs__``) or in a ``__dict__``."""
    held = set(getattr(detector, "__dict__", {}))
    for cls in type(detector).__mro__:
        names = vars(cls).get("__mypyc_attrs__", vars(cls).get("__slots__", ()))
        held |= {name for name in names if not name.startswith("__") and hasattr(detector, name)}
    return held


def test_every_detector_is_registered_under_a_kebab_case_name() -> None:
    assert {"normal-scores-cusum", "bernoulli-cusum", "chi-square-window", "robust-zscore", "adwin"} <= set(
        REGISTRY
    )
    for name, cls in REGISTRY.items():
        assert name == name.lower()
        assert " " not in name
        assert cls.registry_name == name
        assert cls.input_kind in ("numeric", "binary", "categorical", "features")
        docstring = ast.get_docstring(class_source(cls)) or ""
        assert "Examples" in docstring, f"{name} needs a docstring with a doctest"


@pytest.mark.parametrize(("name", "params"), CASES)
def test_hyperparameters_are_public_and_unchanged(name: str, params: dict[str, Any]) -> None:
    detector = make(name, params)
    defaults = init_defaults(type(detector))
    assert tuple(defaults) == type(detector).PARAMS, "PARAMS must list __init__'s parameters in order"
    for param, value in params.items():
        assert getattr(detector, param) == value
    for param, default in defaults.items():
        if param not in params:
            assert getattr(detector, param) == default
    clone = detector.clone()
    assert type(clone) is type(detector)
    assert clone._get_params() == detector._get_params()
    assert repr(detector).startswith(type(detector).__name__ + "(")


@pytest.mark.parametrize(("name", "params"), CASES)
def test_deterministic_for_a_seeded_stream(name: str, params: dict[str, Any]) -> None:
    kind = REGISTRY[name].input_kind
    values = stream(kind, 3_000, seed=11)
    first, second = feed(make(name, params), values), feed(make(name, params), values)
    assert first == second
    if kind != "features":
        assert any(o is not False for o in first), "the change half-way should be detected"


@pytest.mark.parametrize(("name", "params"), CASES)
def test_pickle_round_trip_resumes_exactly(name: str, params: dict[str, Any]) -> None:
    values = stream(REGISTRY[name].input_kind, 3_000, seed=12)
    original = make(name, params)
    feed(original, values[:1_400])
    restored = pickle.loads(pickle.dumps(original))
    assert feed(restored, values[1_400:]) == feed(original, values[1_400:])


@pytest.mark.parametrize(("name", "params"), CASES)
def test_state_record_round_trip_through_json_resumes_exactly(name: str, params: dict[str, Any]) -> None:
    """The snapshot format: a detector saved as its state record and restored elsewhere decides the same."""
    if REGISTRY[name].STATE_FIELDS is None:
        pytest.skip(f"{name} declares no state format (restarts with a warm-up after a restore)")
    values = stream(REGISTRY[name].input_kind, 3_000, seed=12)
    original = make(name, params)
    feed(original, values[:1_400])
    restored = state.restore(orjson.loads(state.dumps(state.record(original))))
    assert type(restored) is type(original)
    assert restored._get_params() == original._get_params()
    assert feed(restored, values[1_400:]) == feed(original, values[1_400:])


@pytest.mark.parametrize(("name", "params"), CASES)
def test_state_fields_name_every_piece_of_mutable_state(name: str, params: dict[str, Any]) -> None:
    """A field left out of ``STATE_FIELDS`` would be silently reset by a restore."""
    cls = REGISTRY[name]
    if cls.STATE_FIELDS is None:
        pytest.skip(f"{name} declares no state format")
    detector = make(name, params)
    feed(detector, stream(cls.input_kind, 2_000, seed=16))
    held = attributes(detector)
    hyperparameters = set(init_defaults(cls))
    not_state = {"_drift", "_evidence"}  # read right after the value that detected, never later
    assert held - hyperparameters - not_state - cls.LINKS == set(cls.STATE_FIELDS)


def test_a_record_of_another_state_version_is_refused() -> None:
    saved = orjson.loads(state.dumps(state.record(make("seasonal-cusum", {}))))
    saved[1] += 1
    refusal = "seasonal-cusum state of version 4; this version reads 1, 2, 3"
    with pytest.raises(state.StateError, match=refusal):
        state.restore(saved)


@pytest.mark.parametrize(("version", "numbers"), [(1, 30), (2, 33)])
def test_a_seasonal_cusum_record_of_an_earlier_version_is_upgraded_and_carries_on(
    version: int, numbers: int
) -> None:
    """An upgrade of Vigil keeps numeric baselines: version 1 wrote the charts three numbers
    shorter (no autocorrelation warm-up residual, no day's residuals), version 2 without the
    small-shift charts (which start at zero, as after a detection)."""
    values = stream("numeric", 3_000, seed=21)
    original = make("seasonal-cusum", {})
    feed(original, values[:1_400])
    saved = orjson.loads(state.dumps(state.record(original)))
    charts = saved[3][-1]
    charts["b"] = base64.b64encode(base64.b64decode(charts["b"])[: numbers * 8]).decode()
    saved[1] = version
    restored = state.restore(saved)
    for at in range(SMALL, SMALL + 8):
        original._charts[at] = 0.0  # what the earlier version did not have
    assert feed(restored, values[1_400:]) == feed(original, values[1_400:])
    assert any(flag for flag in feed(make("seasonal-cusum", {}), values) if flag)  # the stream has a change


def test_a_version_1_record_with_charts_of_another_length_is_refused() -> None:
    saved = orjson.loads(state.dumps(state.record(make("seasonal-cusum", {}))))
    charts = saved[3][-1]
    charts["b"] = base64.b64encode(base64.b64decode(charts["b"])[: 31 * 8]).decode()
    saved[1] = 1
    with pytest.raises(state.StateError, match="seasonal-cusum charts of 31 numbers, 43 expected"):
        state.restore(saved)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_reset_starts_over(name: str, params: dict[str, Any]) -> None:
    values = stream(REGISTRY[name].input_kind, 2_000, seed=13)
    used = make(name, params)
    feed(used, stream(REGISTRY[name].input_kind, 2_000, seed=14))
    used._reset()
    assert feed(used, values) == feed(make(name, params), values)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_memory_does_not_grow_with_the_stream(name: str, params: dict[str, Any]) -> None:
    kind = REGISTRY[name].input_kind
    values = stream(kind, 40_000, seed=15, categories=200)
    detector = make(name, params)
    feed(detector, values[:5_000])
    early = len(pickle.dumps(detector))
    feed(detector, values[5_000:])
    late = len(pickle.dumps(detector))
    assert late <= 64 * 1024, f"{name} holds {late} bytes after 40k values"
    assert late <= 1.5 * early + 2_048, f"{name} grew from {early} to {late} bytes"


@pytest.mark.parametrize(("name", "params"), CASES)
def test_missing_values_change_nothing(name: str, params: dict[str, Any]) -> None:
    kind = REGISTRY[name].input_kind
    detector = make(name, params)
    feed(detector, stream(kind, 1_000, seed=16))
    before = pickle.dumps(detector)
    if isinstance(detector, DriftDetector):
        detector.update(None)
        assert pickle.dumps(detector) == before
        assert not detector.drift_detected or before == pickle.dumps(detector)
    else:
        assert isinstance(detector, AnomalyDetector)
        assert detector.score_one({}) == 0.0
        partial = {"a": None, "b": 10.0}
        assert detector.score_one(partial) >= 0.0
        detector.learn_one({"a": None})
        assert pickle.dumps(detector) == before
        detector.learn_one({"never-seen": 1.0})  # a new feature starts its own statistics
        assert detector.score_one({"never-seen": 1.0, "a": 0.0}) >= 0.0


@pytest.mark.parametrize(("name", "params"), CASES)
def test_no_signal_while_warming_up(name: str, params: dict[str, Any]) -> None:
    detector = make(name, params)
    if not isinstance(detector, DriftDetector):
        pytest.skip("anomaly scorers have no warm-up signal")
    kind = REGISTRY[name].input_kind
    wild = {"numeric": [0.0, 100.0] * 8, "binary": [True] * 16, "categorical": ["x", "y"] * 8}[kind]
    for x in wild:
        detector.update(x)
        assert detector.warming_up
        assert not detector.drift_detected


def test_unknown_names_and_parameters_fail_clearly() -> None:
    with pytest.raises(ValueError, match=r"unknown detector 'nope'; registered: .*normal-scores-cusum"):
        create("nope")
    with pytest.raises(ValueError, match=r"normal-scores-cusum.*unexpected keyword argument 'delta'"):
        create("normal-scores-cusum", {"delta": 0.1})
