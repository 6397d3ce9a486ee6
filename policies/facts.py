"""Coarse facts the pipeline derives for the policies (the Cedar ``context``).

Every request carries every fact, with the defaults below when one does not apply,
so the Cedar schema can declare one context shape, a policy can never read a
missing attribute, and decisions cache well (few distinct fact combinations).
Keep ``FACT_DEFAULTS`` and ``policies/schema.cedarschema`` in step: a test checks.
``identifiers_canonical`` defaults to true so that replaying decisions recorded
before the fact existed re-decides them as they were decided then; ``evaluation``
and ``fairness`` default to ``none`` (no thresholds to meet) for the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from identity.verify import Verdict
from policies.inventory import Inventory, ModelEntry
from schemas.events import AccessEvent, Event, InferenceEvent, TrainingEvent
from schemas.identifiers import identifier_problem

FactValue = bool | str
Facts = tuple[tuple[str, FactValue], ...]

FACT_DEFAULTS: dict[str, FactValue] = {
    "verified": False,
    "token_verified": False,
    "mfa": False,
    "principal_known": False,
    "off_hours": False,
    "approval_present": False,
    "model_status": "none",
    "artifact_matches": False,
    "dataset_approved": False,
    "dataset_classification": "none",
    "dataset_digest_known": False,
    "outcome": "none",
    "identifiers_canonical": True,
    "evaluation": "none",
    "fairness": "none",
}
FACT_NAMES = tuple(FACT_DEFAULTS)


def complete(partial: dict[str, FactValue]) -> Facts:
    """All facts in canonical order, defaults filled in; unknown names are an error."""
    unknown = set(partial) - set(FACT_DEFAULTS)
    if unknown:
        raise KeyError(f"unknown facts {sorted(unknown)}; known: {', '.join(FACT_NAMES)}")
    return tuple((name, partial.get(name, default)) for name, default in FACT_DEFAULTS.items())


def derive(event: Event, verdict: Verdict, inventory: Inventory) -> Facts:
    """The facts of one event, in ``FACT_NAMES`` order (built directly: this runs per event)."""
    model_status, artifact_matches, evaluation, fairness = "none", False, "none", "none"
    if event.resource.kind == "model":
        metrics = event.metrics if isinstance(event, TrainingEvent) else None
        model_status, artifact_matches, evaluation, fairness = model_facts(
            inventory, event.resource.id, _artifact_digest(event), metrics
        )
    dataset_approved, classification, digest_known = False, "none", False
    dataset_id = _dataset_id(event)
    if dataset_id is not None:
        digest = event.dataset_digest if isinstance(event, TrainingEvent) else None
        dataset_approved, classification, digest_known = dataset_facts(inventory, dataset_id, digest)
    token_verified = verdict.token.ok
    return (
        ("verified", verdict.verified),
        ("token_verified", token_verified),
        ("mfa", verdict.token.mfa if token_verified else _claimed_mfa(event)),
        ("principal_known", event.principal.id in inventory.principals),
        ("off_hours", inventory.off_hours(event.ts)),
        ("approval_present", isinstance(event, TrainingEvent) and event.approval is not None),
        ("model_status", model_status),
        ("artifact_matches", artifact_matches),
        ("dataset_approved", dataset_approved),
        ("dataset_classification", classification),
        ("dataset_digest_known", digest_known),
        ("outcome", event.outcome if isinstance(event, AccessEvent) else "none"),
        ("identifiers_canonical", identifiers_canonical(event.principal.id, event.resource.id, dataset_id)),
        ("evaluation", evaluation),
        ("fairness", fairness),
    )


def model_facts(
    inventory: Inventory, model_id: str, artifact_digest: str | None, metrics: Mapping[str, float] | None
) -> tuple[str, bool, str, str]:
    """``model_status``, ``artifact_matches``, ``evaluation`` and ``fairness`` of a model
    resource; without ``metrics`` (not a lifecycle step that reports any) the last two are
    ``none``. Events and inline questions share it, so one policy judges both alike."""
    model = inventory.models.get(model_id)
    status = model.status if model else "unregistered"
    matches = bool(model and artifact_digest and model.artifact_digest == artifact_digest)
    evaluation, fairness = ("none", "none") if metrics is None else threshold_results(model, metrics)
    return status, matches, evaluation, fairness


def dataset_facts(inventory: Inventory, dataset_id: str, digest: str | None) -> tuple[bool, str, bool]:
    """``dataset_approved``, ``dataset_classification`` and ``dataset_digest_known``."""
    dataset = inventory.datasets.get(dataset_id)
    if dataset is None:
        return False, "unregistered", False
    return dataset.approved, dataset.classification, digest is not None and digest in dataset.digests


def threshold_results(model: ModelEntry | None, metrics: Mapping[str, float]) -> tuple[str, str]:
    """``evaluation`` and ``fairness``: ``none`` without thresholds, else ``pass`` or ``fail``.

    The inventory sets a model's thresholds (``evaluation_min``: each metric at least
    this; ``fairness_max``: each disparity at most this). A metric the thresholds name
    and the metrics lack fails: an unmeasured model has not met its bar.
    """
    if model is None:
        return "none", "none"
    evaluation = fairness = "none"
    if model.evaluation_min:
        met = all(n in metrics and metrics[n] >= bound for n, bound in model.evaluation_min.items())
        evaluation = "pass" if met else "fail"
    if model.fairness_max:
        met = all(n in metrics and metrics[n] <= bound for n, bound in model.fairness_max.items())
        fairness = "pass" if met else "fail"
    return evaluation, fairness


def identifiers_canonical(principal_id: str, resource_id: str, dataset_id: str | None) -> bool:
    """Whether every identifier the policies decide on is canonical (``schemas.identifiers``)."""
    if identifier_problem(principal_id, resource=False) or identifier_problem(resource_id, resource=True):
        return False
    return dataset_id is None or not identifier_problem(dataset_id, resource=True)


def _claimed_mfa(event: Event) -> bool:
    """Without a verified token, MFA is what the (signed) access event reports."""
    return isinstance(event, AccessEvent) and event.mfa


def _artifact_digest(event: Event) -> str | None:
    if isinstance(event, InferenceEvent | TrainingEvent):
        return event.artifact_digest
    return None


def _dataset_id(event: Event) -> str | None:
    if isinstance(event, TrainingEvent):
        return event.dataset_id
    if event.resource.kind == "dataset":
        return event.resource.id
    return None
