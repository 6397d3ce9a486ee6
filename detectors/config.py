"""Per-model detector configuration: YAML, merged over the shipped defaults.

``load_config(path)`` reads ``defaults.yaml`` beside this module, merges the file
at ``path`` over it key by key, and validates the result: unknown keys, unknown
detector names, detectors of the wrong kind and parameters a detector does not
accept all fail at start-up with the path of the offending key, never mid-stream.
``DetectorsConfig.for_model`` resolves one model's settings (``models.<id>`` over
``models."*"``) and caches them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from detectors.base import Detector, InputKind
from detectors.registry import REGISTRY, create

DEFAULTS_FILE = Path(__file__).resolve().parent / "defaults.yaml"


class DetectorConfigError(ValueError):
    """The detector configuration cannot be used; one line naming the file and each offending key."""


DEFAULT_MODEL = "*"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeasonalityConfig(_Section):
    """The cycle a model's traffic follows, for the detectors that learn one."""

    cycle: Literal["none", "daily", "weekly"] = "weekly"
    utc_offset_minutes: int = Field(default=0, ge=-14 * 60, le=14 * 60)


class DetectorChoice(_Section):
    detector: str
    params: dict[str, Any] = Field(default_factory=dict)

    def build(self, seasonality: SeasonalityConfig | None = None) -> Detector:
        """The detector; one that follows a cycle gets the model's unless its params name one."""
        params = self.params
        cls = REGISTRY.get(self.detector)
        if seasonality is not None and cls is not None and getattr(cls, "follows_cycle", False):
            params = {
                "seasonality": seasonality.cycle,
                "utc_offset_minutes": seasonality.utc_offset_minutes,
                **params,
            }
        return create(self.detector, params)

    def check(self, kind: InputKind, where: str) -> None:
        cls = REGISTRY.get(self.detector)
        if cls is None:
            raise ValueError(f"{where}: unknown detector {self.detector!r}; registered: {sorted(REGISTRY)}")
        if cls.input_kind != kind:
            raise ValueError(
                f"{where}: {self.detector!r} takes {cls.input_kind} input, {kind} is needed here"
            )
        try:
            self.build()
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None


class FeaturesConfig(_Section):
    include: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    numeric: DetectorChoice
    categorical: DetectorChoice

    def tracks(self, name: str) -> bool:
        return name not in self.exclude and (self.include is None or name in self.include)


class Toggle(_Section):
    enabled: bool = True


class OperationsConfig(_Section):
    enabled: bool = True
    detector: DetectorChoice


class PerformanceConfig(_Section):
    enabled: bool = True
    error_rate: DetectorChoice
    calibration: DetectorChoice
    max_pending: int = Field(ge=1)
    max_pending_bytes: int = Field(ge=4096)
    max_pending_age_seconds: float = Field(gt=0)


class BiasConfig(_Section):
    enabled: bool = True
    attributes: list[str] | None = None
    max_groups: int = Field(ge=2)
    positive_labels: list[str]
    score_threshold: float
    window: int = Field(ge=10)
    min_samples: int = Field(ge=1)
    four_fifths: float = Field(gt=0, lt=1)
    min_z: float = Field(ge=0)
    recover: float = Field(gt=0, le=1)
    max_error_ratio: float = Field(gt=1)
    min_error_gap: float = Field(ge=0)
    shift: DetectorChoice


class OutliersConfig(_Section):
    enabled: bool = False
    detector: DetectorChoice
    calibration_events: int = Field(ge=16)
    quantile: float = Field(gt=0.5, lt=1)
    rate: DetectorChoice


class ModelConfig(_Section):
    seasonality: SeasonalityConfig = Field(default_factory=SeasonalityConfig)
    features: FeaturesConfig
    prediction: Toggle
    operations: OperationsConfig
    performance: PerformanceConfig
    bias: BiasConfig
    outliers: OutliersConfig
    supply_chain: Toggle

    def check(self, where: str) -> None:
        self.features.numeric.check("numeric", f"{where}.features.numeric")
        self.features.categorical.check("categorical", f"{where}.features.categorical")
        self.operations.detector.check("numeric", f"{where}.operations.detector")
        self.performance.error_rate.check("binary", f"{where}.performance.error_rate")
        self.performance.calibration.check("numeric", f"{where}.performance.calibration")
        self.bias.shift.check("binary", f"{where}.bias.shift")
        self.outliers.detector.check("features", f"{where}.outliers.detector")
        self.outliers.rate.check("binary", f"{where}.outliers.rate")


class BurstConfig(_Section):
    bucket_seconds: float = Field(gt=0)
    min_events: int = Field(ge=1)
    ratio: float = Field(ge=1)
    p_value: float = Field(gt=0, lt=1)
    warmup_buckets: int = Field(ge=1)


class BulkConfig(_Section):
    min_records: int = Field(ge=0)
    min_bytes: int = Field(ge=0)
    z: float = Field(gt=0)
    warmup_events: int = Field(ge=2)


class NoveltyConfig(_Section):
    enabled: bool = True
    cooldown_seconds: float = Field(ge=0)
    max_tracked: int = Field(ge=1)


class OffHoursConfig(_Section):
    enabled: bool = True
    min_events: int = Field(ge=1)
    min_days: float = Field(ge=0)
    rare_share: float = Field(ge=0, lt=1)
    cooldown_seconds: float = Field(ge=0)


class DeniedBurstConfig(_Section):
    count: int = Field(ge=2)
    within_seconds: float = Field(gt=0)


class AccessConfig(_Section):
    enabled: bool = True
    warmup_events: int = Field(ge=0)
    burst: BurstConfig
    bulk: BulkConfig
    new_resource: NoveltyConfig
    new_ip: NoveltyConfig
    off_hours: OffHoursConfig
    denied_burst: DeniedBurstConfig


class Limits(_Section):
    max_keys_per_partition: int = Field(ge=1)
    max_principals_per_partition: int = Field(ge=1)
    max_access_mib: float = Field(gt=0)
    """Access state per partition, estimated; least recently seen principals leave first."""
    max_pending_mib: float = Field(gt=0)
    """Predictions awaiting feedback per partition, all models together."""


class DetectorsConfig(_Section):
    models: dict[str, dict[str, Any]]
    access: AccessConfig
    limits: Limits
    _resolved: dict[str, ModelConfig] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_models(self) -> DetectorsConfig:
        if DEFAULT_MODEL not in self.models:
            raise ValueError(f'models: the "{DEFAULT_MODEL}" entry (defaults for every model) is missing')
        for model_id in self.models:
            self._resolve(model_id).check(f"models.{model_id}")
        return self

    def for_model(self, model_id: str) -> ModelConfig:
        resolved = self._resolved.get(model_id)
        if resolved is None:
            resolved = self._resolve(model_id if model_id in self.models else DEFAULT_MODEL)
            if len(self._resolved) < 100_000:
                self._resolved[model_id] = resolved
        return resolved

    def _resolve(self, model_id: str) -> ModelConfig:
        merged = merge(self.models[DEFAULT_MODEL], self.models.get(model_id, {}))
        try:
            return ModelConfig.model_validate(merged)
        except ValidationError as error:
            raise ValueError(_one_line(error, f"models.{model_id}")) from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, recursively for nested mappings."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: Path | None = None) -> DetectorsConfig:
    """The shipped defaults, with the YAML file at ``path`` (if any) merged over them."""
    raw = yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8"))
    if path is not None:
        try:
            user = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as error:
            raise DetectorConfigError(f"detector configuration {path}: {error.strerror}") from None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or "invalid YAML"
            raise DetectorConfigError(f"detector configuration {path}: {problem}{where}") from None
        if not isinstance(user, dict):
            raise DetectorConfigError(f"detector configuration {path}: expected a mapping at the top level")
        raw = merge(raw, user)
    try:
        return DetectorsConfig.model_validate(raw)
    except ValidationError as error:
        raise DetectorConfigError(
            f"detector configuration {path or DEFAULTS_FILE}: {_one_line(error)}"
        ) from None


def _one_line(error: ValidationError, within: str = "") -> str:
    """Each problem as ``path.to.key: what is wrong``, on one line."""
    problems = []
    for found in error.errors():
        where = ".".join(str(part) for part in (within, *found["loc"]) if part != "")
        cause = found.get("ctx", {}).get("error") if found["type"] == "value_error" else None
        text = " ".join(str(cause or found["msg"]).split())
        problems.append(f"{where}: {text}" if where else text)
    return "; ".join(problems)
