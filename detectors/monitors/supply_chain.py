"""Supply chain and rogue code: what runs must be what was trained and registered.

Per model, from training events: the artifacts registered for serving
(``register``, ``deploy``, ``rollback``), the artifacts and code commits of training
runs (``train``, ``fine_tune``), and per dataset id the digests seen (``ingest``
announces a new version; so does the first run on a dataset). Findings:

- ``artifact-unregistered`` (critical): inference served by an artifact digest
  that no deploy registered, once per digest. Until anything is known about a
  model, the first digest it serves is its baseline (trust on first use). Only for
  models whose digest the inventory does not register: where it does, the policy
  ``inference-artifact-matches-registry`` judges every inference against it, and a
  second, weaker opinion on the same artifact would be a second alert for one
  incident that could disagree with the first.
- ``dataset-digest-new``: a training run on a digest never seen for that dataset
  id and not announced by an ``ingest``.
- ``code-commit-untrained``: a ``register``/``deploy``/``rollback`` whose code commit
  no training run of the model used (the shipped code changed outside training).
- ``artifact-untrained``: a ``register``/``deploy`` of an artifact no training run
  of the model produced.

Sets are bounded (least recently used leave first); state is per model, so it
lives in the model's partition like everything else.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from detectors.findings import Signal
from detectors.monitors.budget import Budget
from detectors.state import StateError
from schemas.events import InferenceEvent, TrainingEvent

MAX_TRACKED = 256
MAX_DATASETS = 64
TRAINING = ("train", "fine_tune")
SHIPPING = ("register", "deploy", "rollback")


class _Seen:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, item: str) -> bool:
        return item in self.items

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: str) -> None:
        self.items[item] = None
        self.items.move_to_end(item)
        if len(self.items) > MAX_TRACKED:
            self.items.popitem(last=False)

    def latest(self, count: int = 5) -> list[str]:
        return list(self.items)[-count:]


class _Model:
    __slots__ = ("commits", "datasets", "last_served", "produced", "registered", "served")

    def __init__(self) -> None:
        self.registered = _Seen()
        self.produced = _Seen()
        self.commits = _Seen()
        self.served = _Seen()
        self.last_served = ""
        self.datasets: OrderedDict[str, _Seen] = OrderedDict()


class SupplyChain:
    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._models: dict[str, _Model] = {}

    @property
    def keys(self) -> int:
        return len(self._models)

    def export_model(self, model_id: str) -> dict[str, Any] | None:
        """What the model is known to have been built from and served, oldest first."""
        model = self._models.get(model_id)
        if model is None:
            return None
        return {
            "registered": list(model.registered.items),
            "produced": list(model.produced.items),
            "commits": list(model.commits.items),
            "served": list(model.served.items),
            "last_served": model.last_served,
            "datasets": {name: list(seen.items) for name, seen in model.datasets.items()},
        }

    def import_model(self, model_id: str, data: dict[str, Any]) -> None:
        """Install a model's state saved by ``export_model``; ``StateError`` when malformed."""
        model = _Model()
        try:
            for name in ("registered", "produced", "commits", "served"):
                getattr(model, name).items.update(dict.fromkeys(map(str, data[name])))
            model.last_served = str(data["last_served"])
            for name, items in data["datasets"].items():
                seen = model.datasets[name] = _Seen()
                seen.items.update(dict.fromkeys(map(str, items)))
        except (KeyError, TypeError, AttributeError) as error:
            raise StateError(f"supply chain of {model_id}: {type(error).__name__}: {error}") from None
        self._models[model_id] = model
        self.budget.used += 1

    def _model(self, model_id: str) -> _Model | None:
        model = self._models.get(model_id)
        if model is None and self.budget.take():
            model = self._models[model_id] = _Model()
        return model

    def observe_inference(
        self, event: InferenceEvent, *, inventory_digest: str | None = None
    ) -> list[Signal]:
        """``inventory_digest``: the digest the inventory registers for the model, if any.

        The served artifact is still remembered then, so that a model the inventory
        stops registering keeps its baseline.
        """
        digest = event.artifact_digest
        model = self._models.get(event.model_id)
        if model is not None and digest == model.last_served:
            return []
        model = model or self._model(event.model_id)
        if model is None:
            return []
        model.last_served = digest
        if digest in model.served:
            return []
        known = len(model.served) + len(model.registered)
        model.served.add(digest)
        if inventory_digest is not None or digest in model.registered or known == 0:
            return []
        return [
            Signal(
                rule="artifact-unregistered",
                subject=digest,
                severity="critical",
                message=(
                    f"{event.model_id} is serving artifact {digest} (version {event.model_version}) that no "
                    f"deploy registered (the inventory registers no digest for it); deployed: "
                    f"{', '.join(model.registered.latest()) or 'none'}, "
                    f"served before: {', '.join(d for d in model.served.latest(4) if d != digest)}"
                ),
                details={
                    "change": "artifact",
                    "artifact_digest": digest,
                    "model_version": event.model_version,
                    "magnitude": {"registered": len(model.registered)},
                    "since": {"ts": event.ts.isoformat(), "events_ago": 0, "located": True},
                    "reference": {
                        "registered": model.registered.latest(),
                        "served_before": [d for d in model.served.latest(6) if d != digest],
                    },
                    "window": {"served": digest, "source": event.source},
                },
            )
        ]

    def observe_training(self, event: TrainingEvent) -> list[Signal]:
        model = self._model(event.model_id)
        if model is None:
            return []
        signals: list[Signal] = []
        if event.action == "ingest":
            self._dataset(model, event.dataset_id).add(event.dataset_digest)
        elif event.action in TRAINING:
            signal = self._dataset_check(event, model)
            if signal is not None:
                signals.append(signal)
            model.commits.add(event.code_commit)
            if event.artifact_digest:
                model.produced.add(event.artifact_digest)
        elif event.action in SHIPPING:
            signals.extend(self._shipping_checks(event, model))
            if event.artifact_digest:
                model.registered.add(event.artifact_digest)
        return signals

    def _dataset(self, model: _Model, dataset_id: str) -> _Seen:
        seen = model.datasets.get(dataset_id)
        if seen is None:
            seen = model.datasets[dataset_id] = _Seen()
            if len(model.datasets) > MAX_DATASETS:
                model.datasets.popitem(last=False)
        model.datasets.move_to_end(dataset_id)
        return seen

    def _dataset_check(self, event: TrainingEvent, model: _Model) -> Signal | None:
        seen = self._dataset(model, event.dataset_id)
        digest = event.dataset_digest
        if digest in seen:
            return None
        before = seen.latest()
        seen.add(digest)
        if not before:
            return None
        return Signal(
            rule="dataset-digest-new",
            subject=f"{event.dataset_id}@{digest}",
            severity="high",
            message=(
                f"{event.principal.id} ran {event.action} {event.run_id} of {event.model_id} on dataset "
                f"{event.dataset_id} with digest {digest}, never seen for it (known: {', '.join(before)})"
            ),
            details={
                "change": "dataset-digest",
                "dataset_id": event.dataset_id,
                "dataset_digest": digest,
                "run_id": event.run_id,
                "magnitude": {"known_digests": len(before)},
                "since": {"ts": event.ts.isoformat(), "events_ago": 0, "located": True},
                "reference": {"known_digests": before},
                "window": {"digest": digest, "action": event.action},
            },
        )

    def _shipping_checks(self, event: TrainingEvent, model: _Model) -> list[Signal]:
        signals = []
        if len(model.commits) and event.code_commit not in model.commits:
            signals.append(
                Signal(
                    rule="code-commit-untrained",
                    subject=event.code_commit,
                    severity="high",
                    message=(
                        f"{event.principal.id} ran {event.action} of {event.model_id} from code commit "
                        f"{event.code_commit}, which no training run used "
                        f"(trained from: {', '.join(model.commits.latest())})"
                    ),
                    details={
                        "change": "code-commit",
                        "code_commit": event.code_commit,
                        "run_id": event.run_id,
                        "magnitude": {"trained_commits": len(model.commits)},
                        "since": {"ts": event.ts.isoformat(), "events_ago": 0, "located": True},
                        "reference": {"trained_commits": model.commits.latest()},
                        "window": {"commit": event.code_commit, "action": event.action},
                    },
                )
            )
        artifact = event.artifact_digest
        if artifact and event.action != "rollback" and len(model.produced) and artifact not in model.produced:
            signals.append(
                Signal(
                    rule="artifact-untrained",
                    subject=artifact,
                    severity="high",
                    message=(
                        f"{event.principal.id} ran {event.action} of {event.model_id} "
                        f"with artifact {artifact}, "
                        f"which no training run produced (produced: {', '.join(model.produced.latest())})"
                    ),
                    details={
                        "change": "artifact",
                        "artifact_digest": artifact,
                        "run_id": event.run_id,
                        "magnitude": {"produced": len(model.produced)},
                        "since": {"ts": event.ts.isoformat(), "events_ago": 0, "located": True},
                        "reference": {"produced": model.produced.latest()},
                        "window": {"artifact": artifact, "action": event.action},
                    },
                )
            )
        return signals
