"""The Cedar request of a question asked before the action (``vigil serve``, ``vigil gate``).

A streamed event carries everything its facts are derived from; an inline question
names the principal, the action and the resource, plus the few things only the
caller knows (the artifact it is about to serve, the dataset it is about to train
on, the approval it holds). Facts are derived from those and the inventory with the
same meaning as ``policies.facts.derive``, so one policy judges both.

``verified`` is the caller's authentication: an inline question is asked by a
caller the API has authenticated (a JWT from the IdP, or an API key), so it is true.
Roles come from the inventory, plus the token's roles when the token is the
principal's own; a service acting on behalf of a user never lends its roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from policies.facts import Facts, dataset_facts, identifiers_canonical, model_facts
from policies.inventory import Inventory
from policies.requests import _ENTITY_TYPE as ENTITY_TYPE  # one mapping for events and questions
from policies.requests import AuthzRequest

ACT_ON_BEHALF = "act_on_behalf"
"""The action a caller needs permitted to ask about a principal other than itself."""


@dataclass(frozen=True, slots=True)
class InlineQuestion:
    """May ``principal`` do ``action`` on ``resource`` now? With what the caller knows."""

    principal_id: str
    principal_kind: str
    action: str
    resource_kind: str
    resource_id: str
    artifact_digest: str | None = None
    dataset_id: str | None = None
    dataset_digest: str | None = None
    approval_present: bool = False
    mfa: bool = False
    """Whether the principal's own token proved a second factor (never the caller's claim)."""
    metrics: tuple[tuple[str, float], ...] = ()
    """Evaluation and fairness metrics of the model about to be registered or deployed."""


def inline_request(
    question: InlineQuestion,
    inventory: Inventory,
    at: datetime,
    *,
    token_roles: tuple[str, ...] = (),
    token_verified: bool = False,
) -> AuthzRequest:
    roles = inventory.roles_of(question.principal_id)
    if token_roles:
        roles = tuple(sorted({*roles, *token_roles}))
    return AuthzRequest(
        principal_type=ENTITY_TYPE[question.principal_kind],
        principal_id=question.principal_id,
        roles=roles,
        action=question.action,
        resource_type=ENTITY_TYPE[question.resource_kind],
        resource_id=question.resource_id,
        facts=_facts(question, inventory, at, token_verified),
    )


def on_behalf_request(
    caller_id: str,
    caller_kind: str,
    caller_roles: tuple[str, ...],
    principal_id: str,
    principal_kind: str,
    inventory: Inventory,
    at: datetime,
    *,
    token_verified: bool,
) -> AuthzRequest:
    """Whether the caller may ask on behalf of ``principal_id``: a decision of its own."""
    roles = tuple(sorted({*inventory.roles_of(caller_id), *caller_roles}))
    question = InlineQuestion(caller_id, caller_kind, ACT_ON_BEHALF, principal_kind, principal_id)
    return AuthzRequest(
        principal_type=ENTITY_TYPE[caller_kind],
        principal_id=caller_id,
        roles=roles,
        action=ACT_ON_BEHALF,
        resource_type=ENTITY_TYPE[principal_kind],
        resource_id=principal_id,
        facts=_facts(question, inventory, at, token_verified),
    )


def _facts(question: InlineQuestion, inventory: Inventory, at: datetime, token_verified: bool) -> Facts:
    model_status, artifact_matches, evaluation, fairness = "none", False, "none", "none"
    if question.resource_kind == "model":
        model_status, artifact_matches, evaluation, fairness = model_facts(
            inventory, question.resource_id, question.artifact_digest, dict(question.metrics)
        )
    dataset_id = question.dataset_id
    if dataset_id is None and question.resource_kind == "dataset":
        dataset_id = question.resource_id
    dataset_approved, classification, digest_known = False, "none", False
    if dataset_id is not None:
        dataset_approved, classification, digest_known = dataset_facts(
            inventory, dataset_id, question.dataset_digest
        )
    return (
        ("verified", True),
        ("token_verified", token_verified),
        ("mfa", question.mfa and token_verified),
        ("principal_known", question.principal_id in inventory.principals),
        ("off_hours", inventory.off_hours(at)),
        ("approval_present", question.approval_present),
        ("model_status", model_status),
        ("artifact_matches", artifact_matches),
        ("dataset_approved", dataset_approved),
        ("dataset_classification", classification),
        ("dataset_digest_known", digest_known),
        ("outcome", "none"),
        (
            "identifiers_canonical",
            identifiers_canonical(question.principal_id, question.resource_id, dataset_id),
        ),
        ("evaluation", evaluation),
        ("fairness", fairness),
    )
