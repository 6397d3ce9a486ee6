"""Detector configuration: defaults for any model, per-model overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from detectors import ADWINMeanShift, SeasonalCUSUM
from detectors.config import load_config
from detectors.stage import DetectStage
from tests.unit.detectors.events import inference


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "detectors.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_any_model_gets_the_shipped_defaults() -> None:
    config = load_config()
    model = config.for_model("never-configured")
    assert model.features.numeric.detector == "seasonal-cusum"
    assert model.seasonality.cycle == "weekly"
    assert isinstance(model.features.numeric.build(model.seasonality), SeasonalCUSUM)
    assert model.outliers.enabled is False
    assert config.for_model("never-configured") is model  # resolved once


def test_a_model_entry_overrides_only_what_it_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "models": {
                "fraud-v3": {
                    "features": {
                        "exclude": ["note"],
                        "numeric": {"detector": "adwin", "params": {"delta": 0.01}},
                    },
                    "bias": {"enabled": False},
                }
            }
        },
    )
    config = load_config(path)
    fraud = config.for_model("fraud-v3")
    detector = fraud.features.numeric.build()
    assert isinstance(detector, ADWINMeanShift)
    assert detector.delta == 0.01
    assert fraud.features.exclude == ["note"]
    assert not fraud.features.tracks("note")
    assert fraud.bias.enabled is False
    assert fraud.bias.four_fifths == 0.8  # everything else inherited
    assert config.for_model("credit-v2").bias.enabled is True


def test_excluded_features_get_no_detector(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {"models": {"fraud-v3": {"features": {"include": ["amount"]}}}}))
    stage = DetectStage(config)
    stage.observe(inference(features={"amount": 1.0, "note": "x", "risk": 0.2}))
    stage.observe(inference(model_id="credit-v2", features={"amount": 1.0, "note": "x", "risk": 0.2}))
    streams = stage.partition(0).streams
    assert streams.keys == 3 + 5  # fraud-v3: amount, score, latency; credit-v2: its three features too


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"models": {"m": {"features": {"numeric": {"detector": "nope"}}}}},
            "models.m.features.numeric: unknown detector 'nope'",
        ),
        (
            {"models": {"m": {"features": {"numeric": {"detector": "bernoulli-cusum"}}}}},
            "models.m.features.numeric: 'bernoulli-cusum' takes binary input, numeric is needed here",
        ),
        (
            {"models": {"m": {"features": {"numeric": {"detector": "adwin", "params": {"dleta": 1}}}}}},
            "unexpected keyword argument 'dleta'",
        ),
        ({"models": {"m": {"featurse": {}}}}, "featurse"),
        ({"access": {"burst": {"min_events": -1}}}, "min_events"),
        ({"models": {"*": None}}, "models"),
    ],
)
def test_mistakes_fail_at_load_with_where_they_are(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(write(tmp_path, data))


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="expected a mapping at the top level"):
        load_config(path)
    with pytest.raises(ValueError, match=r"detector configuration .*missing\.yaml"):
        load_config(tmp_path / "missing.yaml")
