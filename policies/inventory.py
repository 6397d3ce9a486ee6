"""The inventory: who holds which roles, and what state models and datasets are in.

Policies decide on facts derived from it (a model's approval status, whether the
serving artifact is the registered one, a dataset's classification and approval),
and roles come from it (or from a verified token), never from an event's own claim.
It is a YAML file (``VIGIL_POLICIES_INVENTORY``) reloaded when it changes; its
content hash is part of the bundle revision recorded on every decision.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.identifiers import identifier_problem, resembles
from schemas.problems import describe

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it: an inventory of thousands of
principals and datasets loads about four times faster, at start-up and on every reload."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class InventoryError(ValueError):
    """The inventory file cannot be used; the message names the file and the entry."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _canonical(identifier: str, resource: bool) -> str:
    problem = identifier_problem(identifier, resource)
    if problem:
        hint = f" (did you mean {resembles(identifier)!r}?)" if resource else ""
        raise ValueError(f"id {identifier!r} is not canonical: {problem}{hint}")
    return identifier


class PrincipalEntry(_Entry):
    id: str = Field(min_length=1)
    kind: Literal["user", "service"]
    roles: tuple[str, ...] = ()

    @field_validator("id")
    @classmethod
    def _canonical_id(cls, value: str) -> str:
        return _canonical(value, resource=False)

    @field_validator("roles")
    @classmethod
    def _sorted(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Sorted and unique once here, so requests need no sorting per event."""
        return tuple(sorted(set(value)))


class ModelEntry(_Entry):
    id: str = Field(min_length=1)
    owner: str = ""
    status: Literal["approved", "pending", "quarantined", "retired"] = "pending"
    artifact_digest: str | None = None
    evaluation_min: dict[str, float] = Field(default_factory=dict)
    """Evaluation metrics a deploy or registration must reach, e.g. ``{auc: 0.85}``."""
    fairness_max: dict[str, float] = Field(default_factory=dict)
    """Disparities a deploy or registration must stay within, e.g. ``{equal_opportunity_gap: 0.1}``."""

    @field_validator("id")
    @classmethod
    def _canonical_id(cls, value: str) -> str:
        return _canonical(value, resource=True)


class DatasetEntry(_Entry):
    id: str = Field(min_length=1)
    classification: Literal["public", "internal", "confidential", "pii"] = "internal"
    approved: bool = False
    approval_ticket: str | None = None
    digests: tuple[str, ...] = ()

    @field_validator("id")
    @classmethod
    def _canonical_id(cls, value: str) -> str:
        return _canonical(value, resource=True)


class Calendar(_Entry):
    """Business hours; events outside them are ``off_hours`` to the policies."""

    timezone: str = "UTC"
    business_hours: tuple[time, time] = (time(7, 0), time(19, 0))
    weekdays: tuple[str, ...] = WEEKDAYS[:5]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value

    @field_validator("business_hours", mode="before")
    @classmethod
    def _quoted_hours(cls, value: object) -> object:
        """YAML reads unquoted ``9:00`` as a number (540): insist on quoted ``"HH:MM"``."""
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError('business_hours is two quoted times, e.g. ["07:00", "19:00"]')
        hours = []
        for item in value:
            if not isinstance(item, str) or not re.fullmatch(r"\d{2}:\d{2}", item):
                raise ValueError(f'business hour {item!r} must be a quoted "HH:MM" string')
            hours.append(time.fromisoformat(item))
        if hours[0] >= hours[1]:
            raise ValueError("business_hours must start before they end")
        return tuple(hours)

    @field_validator("weekdays")
    @classmethod
    def _known_days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown weekdays {sorted(unknown)}; use {', '.join(WEEKDAYS)}")
        return value

    def off_hours(self, when: datetime) -> bool:
        local = when.astimezone(ZoneInfo(self.timezone))
        start, end = self.business_hours
        return WEEKDAYS[local.weekday()] not in self.weekdays or not start <= local.time() < end


class _InventoryFile(_Entry):
    principals: tuple[PrincipalEntry, ...] = ()
    models: tuple[ModelEntry, ...] = ()
    datasets: tuple[DatasetEntry, ...] = ()
    calendar: Calendar = Calendar()


@dataclass(frozen=True)
class Inventory:
    principals: dict[str, PrincipalEntry] = field(default_factory=dict)
    models: dict[str, ModelEntry] = field(default_factory=dict)
    datasets: dict[str, DatasetEntry] = field(default_factory=dict)
    calendar: Calendar = field(default_factory=Calendar)
    revision: str = "empty"
    _off_hours_by_minute: dict[int, bool] = field(default_factory=dict, repr=False, compare=False)
    request_memo: dict[tuple[object, ...], Any] = field(default_factory=dict, repr=False, compare=False)
    """Requests built with this inventory (policies.requests), dropped with it on reload."""

    def off_hours(self, when: datetime) -> bool:
        """The calendar's answer, memoized by minute: it is asked for every event."""
        minute = int(when.timestamp()) // 60
        cached = self._off_hours_by_minute.get(minute)
        if cached is None:
            if len(self._off_hours_by_minute) > 100_000:
                self._off_hours_by_minute.clear()
            cached = self._off_hours_by_minute[minute] = self.calendar.off_hours(when)
        return cached

    def roles_of(self, principal_id: str) -> tuple[str, ...]:
        entry = self.principals.get(principal_id)
        return entry.roles if entry else ()

    def registered_digest(self, model_id: str) -> str | None:
        """The artifact digest registered for a model, if the inventory names one."""
        entry = self.models.get(model_id)
        return entry.artifact_digest if entry else None


def load_inventory(path: Path | None) -> Inventory:
    """No file means an empty inventory: nobody holds a role, nothing is approved."""
    if path is None:
        return Inventory()
    try:
        text = path.read_text(encoding="utf-8")
        parsed = _InventoryFile.model_validate(yaml.load(text, Loader=_YAML_LOADER) or {})
    except OSError as error:
        raise InventoryError(f"{path}: cannot read inventory: {error.strerror}") from error
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise InventoryError(f"{path}: not a YAML text file: {error}") from error
    except ValidationError as error:
        raise InventoryError(f"{path}: {describe(error)}") from error
    tables: list[dict[str, _Entry]] = []
    for name, entries in (
        ("principals", parsed.principals),
        ("models", parsed.models),
        ("datasets", parsed.datasets),
    ):
        table: dict[str, _Entry] = {}
        for entry in entries:
            entry_id = entry.id
            if entry_id in table:
                raise InventoryError(f"{path}: {name} lists {entry_id!r} twice")
            table[entry_id] = entry
        tables.append(table)
    principals, models, datasets = tables
    return Inventory(
        principals=principals,  # type: ignore[arg-type]
        models=models,  # type: ignore[arg-type]
        datasets=datasets,  # type: ignore[arg-type]
        calendar=parsed.calendar,
        revision=hashlib.sha256(text.encode()).hexdigest()[:16],
    )
