"""The pipeline's detect step: every verified event to the monitors of its partition.

State is kept per Kafka partition number. Events are keyed so that everything
about one model (inference, feedback, training: key ``model_id``) or one principal
(access: key ``principal.id``) lands on one partition number in every topic, and
the worker's range assignor gives the same partition number of every source topic to
the same worker.
A partition's state is therefore the unit a worker checkpoints, drops when the
partition is revoked and restores when it is assigned (``detectors.snapshots``).

``observe`` returns finding rows. It raises only on a bug; the pipeline turns that
into a rejection of the one event.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from detectors.config import DetectorsConfig, Limits, ModelConfig, load_config
from detectors.findings import Signal, finding_row
from detectors.monitors.access import Access
from detectors.monitors.bias import Bias
from detectors.monitors.budget import Budget
from detectors.monitors.model_streams import ModelStreams
from detectors.monitors.performance import Performance
from detectors.monitors.supply_chain import SupplyChain
from detectors.state import StateError
from schemas import Subject
from schemas.events import AccessEvent, Event, FeedbackEvent, InferenceEvent, TrainingEvent, model_id_of
from schemas.records import FindingRow


class PartitionDetectors:
    """All detector state of one partition: exactly what a snapshot holds.

    A snapshot saves it in units (``detectors/snapshots.py``): one per model (its
    streams, feedback join, bias groups and supply chain together) and one per group
    of principals. ``changed`` holds the models whose state changed since the last
    snapshot took them; the access monitor keeps its own changed groups.
    """

    def __init__(self, limits: Limits) -> None:
        self.budget = Budget(limits.max_keys_per_partition)
        self.changed: set[str] = set()
        self.streams = ModelStreams(self.budget)
        self.performance = Performance(
            self.budget, max_bytes=int(limits.max_pending_mib * (1 << 20)), changed=self.changed
        )
        self.bias = Bias(self.budget)
        self.supply_chain = SupplyChain(self.budget)
        self.access = Access(
            Budget(limits.max_principals_per_partition), max_bytes=int(limits.max_access_mib * (1 << 20))
        )
        self.offsets: dict[str, int] = {}
        """Highest offset applied per topic: where a restored snapshot resumes."""

    def export_model(self, model_id: str) -> dict[str, Any]:
        """Every monitor's state of one model, as plain data (``detectors/state.py``)."""
        return {
            "streams": self.streams.export_model(model_id),
            "performance": self.performance.export_model(model_id),
            "bias": self.bias.export_model(model_id),
            "supply_chain": self.supply_chain.export_model(model_id),
        }

    def import_model(self, model_id: str, data: dict[str, Any], config: ModelConfig) -> None:
        """Install one model's state saved by ``export_model`` (``StateError`` when malformed)."""
        try:
            streams, performance = data["streams"], data["performance"]
            bias, supply_chain = data["bias"], data["supply_chain"]
        except (KeyError, TypeError):
            raise StateError(f"state of {model_id} lacks a monitor") from None
        if streams is not None:
            self.streams.import_model(model_id, streams)
        if performance is not None:
            self.performance.import_model(model_id, performance, config)
        if bias is not None:
            self.bias.import_model(model_id, bias)
        if supply_chain is not None:
            self.supply_chain.import_model(model_id, supply_chain)

    @property
    def models(self) -> set[str]:
        """Every model with state in this partition."""
        return (
            set(self.streams._models)
            | set(self.performance._models)
            | set(self.bias._models)
            | set(self.supply_chain._models)
        )

    @property
    def keys(self) -> int:
        return (
            self.streams.keys
            + self.performance.keys
            + self.bias.keys
            + self.supply_chain.keys
            + self.access.keys
        )


@cache
def _shipped_config() -> DetectorsConfig:
    return load_config()


class DetectStage:
    def __init__(self, config: DetectorsConfig | None = None) -> None:
        self.config = config if config is not None else _shipped_config()
        self._partitions: dict[int, PartitionDetectors] = {}
        self._replayed: dict[tuple[str, int], int] = {}
        self._models: dict[str, ModelConfig] = {}

    @property
    def keys(self) -> int:
        """Keyed states across partitions (detectors, principals, models)."""
        return sum(p.keys for p in self._partitions.values())

    @property
    def partitions(self) -> list[int]:
        return sorted(self._partitions)

    def partition(self, number: int) -> PartitionDetectors:
        state = self._partitions.get(number)
        if state is None:
            state = self._partitions[number] = PartitionDetectors(self.config.limits)
        return state

    def observe(
        self,
        event: Event,
        *,
        topic: str = "",
        partition: int = 0,
        offset: int = -1,
        inventory_digest: str | None = None,
    ) -> list[FindingRow]:
        """Feed one verified event; the findings it completes.

        ``inventory_digest`` is the artifact digest the inventory registers for the
        event's model, if any: the policies judge serving against it, so the
        supply-chain monitor stays out of it (``detectors/monitors/supply_chain.py``).
        """
        if offset >= 0 and offset <= self._replayed.get((topic, partition), -1):
            return []  # already in the restored state: a replay after a takeover
        state = self.partition(partition)
        signals = self._dispatch(event, state, inventory_digest)
        if not isinstance(event, AccessEvent):
            state.changed.add(model_id_of(event))
        if offset > state.offsets.get(topic, -1):
            state.offsets[topic] = offset
        if not signals:
            return []
        subject = Subject.of_event(event, model_id_of(event))
        return [finding_row(s, event_id=event.event_id, ts=event.ts, subject=subject) for s in signals]

    def for_model(self, model_id: str) -> ModelConfig:
        """The configuration of one model (cached)."""
        return self._for_model(model_id)

    def _for_model(self, model_id: str) -> ModelConfig:
        config = self._models.get(model_id)
        if config is None:
            config = self.config.for_model(model_id)
            if len(self._models) < 100_000:
                self._models[model_id] = config
        return config

    def _dispatch(
        self, event: Event, state: PartitionDetectors, inventory_digest: str | None
    ) -> list[Signal]:
        if isinstance(event, InferenceEvent):
            config = self._for_model(event.model_id)
            signals = state.streams.observe(event, config)
            if config.performance.enabled:
                state.performance.remember(event, config)
            if config.bias.enabled:
                signals += state.bias.observe(event, config)
            if config.supply_chain.enabled:
                signals += state.supply_chain.observe_inference(event, inventory_digest=inventory_digest)
            return signals
        if isinstance(event, FeedbackEvent):
            config = self._for_model(event.model_id)
            if not config.performance.enabled:
                return []
            signals, outcome = state.performance.observe(event, config)
            if outcome is not None and config.bias.enabled:
                signals += state.bias.observe_outcome(event, outcome, config)
            return signals
        if isinstance(event, TrainingEvent):
            if not self._for_model(event.model_id).supply_chain.enabled:
                return []
            return state.supply_chain.observe_training(event)
        if isinstance(event, AccessEvent) and self.config.access.enabled:
            return state.access.observe(event, self.config.access)
        return []

    def adopt(self, number: int, state: PartitionDetectors) -> None:
        """Install a restored partition; events up to its offsets are replays."""
        self._partitions[number] = state
        for topic, offset in state.offsets.items():
            self._replayed[(topic, number)] = offset

    def drop(self, number: int) -> PartitionDetectors | None:
        """Forget a partition (revoked: another worker owns it now)."""
        for key in [k for k in self._replayed if k[1] == number]:
            del self._replayed[key]
        return self._partitions.pop(number, None)
