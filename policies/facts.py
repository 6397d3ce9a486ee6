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
    model_status: str = "none"
    artifact_matches = False
    evaluation = fairness = "none"
    if event.resource.kind == "model":
        model = inventory.models.get(event.resource.id)
        model_status = model.status if model else "unregistered"
        digest = _artifact_digest(event)
        artifact_matches = bool(model and digest and model.artifact_digest == digest)
        if isinstance(event, TrainingEvent):
            evaluation, fairness = threshold_results(model, event.metrics)
    dataset_approved = False
    classification: str = "none"
    digest_known = False
    dataset_id = _dataset_id(event)
    if dataset_id is not None:
        dataset = inventory.datasets.get(dataset_id)
        dataset_approved = bool(dataset and dataset.approved)
        classification = dataset.classification if dataset else "unregistered"
        if isinstance(event, TrainingEvent):
            digest_known = bool(dataset and event.dataset_digest in dataset.digests)
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
        ("identifiers_canonical", _canonical_ids(event, dataset_id)),
        ("evaluation", evaluation),
        ("fairness", fairness),
    )


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


def _canonical_ids(event: Event, dataset_id: str | None) -> bool:
    """Whether every identifier the policies decide on is canonical (``schemas.identifiers``)."""
    if identifier_problem(event.principal.id, resource=False):
        return False
    resources = (event.resource.id, dataset_id) if dataset_id is not None else (event.resource.id,)
    return not any(identifier_problem(r, resource=True) for r in resources)


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
