"""Turn a verified (or not) event into the Cedar request the policies judge.

Requests are small frozen values: hashable, so identical requests in a batch are
decided once and decisions are cached by value. Only coarse facts go into the
context (booleans and short strings), which keeps policies declarative and the
cache effective.
"""

from __future__ import annotations

from typing import NamedTuple

from identity.verify import Verdict
from policies.facts import Facts, derive
from policies.inventory import Inventory
from schemas.events import AccessEvent, Event, InferenceEvent, TrainingEvent

_ENTITY_TYPE = {
    "user": "User",
    "service": "Service",
    "model": "Model",
    "dataset": "Dataset",
    "endpoint": "Endpoint",
    "feature_store": "FeatureStore",
}


class AuthzRequest(NamedTuple):
    """A tuple, not a dataclass: built once per event, hashed for dedupe and cache."""

    principal_type: str
    principal_id: str
    roles: tuple[str, ...]
    action: str
    resource_type: str
    resource_id: str
    facts: Facts

    def to_cedar(self) -> dict[str, object]:
        # The structured form carries ids verbatim; no Cedar string escaping involved.
        return {
            "principal": {"type": self.principal_type, "id": self.principal_id},
            "action": {"type": "Action", "id": self.action},
            "resource": {"type": self.resource_type, "id": self.resource_id},
            "context": dict(self.facts),
        }

    def entities(self) -> list[dict[str, object]]:
        parents = [{"type": "Role", "id": role} for role in self.roles]
        principal = {"type": self.principal_type, "id": self.principal_id}
        resource = {"type": self.resource_type, "id": self.resource_id}
        entities: list[dict[str, object]] = [{"uid": principal, "attrs": {}, "parents": parents}]
        entities += [{"uid": role, "attrs": {}, "parents": []} for role in parents]
        entities.append({"uid": resource, "attrs": {}, "parents": []})
        return entities


def request_for(event: Event, verdict: Verdict, inventory: Inventory) -> AuthzRequest:
    """Roles come from the inventory and a verified token, never from the event's claim.

    Traffic repeats itself, so requests are memoized per inventory by everything they
    are built from: a hit costs a few attribute reads instead of deriving every fact
    again. The time of day enters only as the calendar's answer (``off_hours``), so a
    principal that touches the same resource all day hits the memo all day.
    """
    key = _memo_key(event, verdict, inventory)
    memo = inventory.request_memo
    request = memo.get(key)
    if request is None:
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        request = memo[key] = _build(event, verdict, inventory)
    return request


MEMO_LIMIT = 50_000


def _memo_key(event: Event, verdict: Verdict, inventory: Inventory) -> tuple[object, ...]:
    """Every input of ``_build`` and ``facts.derive`` besides the inventory."""
    extra: tuple[object, ...] = ()
    if isinstance(event, InferenceEvent):
        extra = (event.artifact_digest,)
    elif isinstance(event, TrainingEvent):
        extra = (
            event.artifact_digest,
            event.dataset_id,
            event.dataset_digest,
            event.approval is not None,
            tuple(event.metrics.items()),
        )
    elif isinstance(event, AccessEvent):
        extra = (event.mfa, event.outcome)
    principal, resource = event.principal, event.resource
    return (
        event.type,
        principal.id,
        principal.kind,
        event.action,
        resource.kind,
        resource.id,
        verdict.verified,
        verdict.token,
        inventory.off_hours(event.ts),
        extra,
    )


def _build(event: Event, verdict: Verdict, inventory: Inventory) -> AuthzRequest:
    roles: tuple[str, ...] = ()
    if verdict.verified:
        roles = inventory.roles_of(event.principal.id)
        if verdict.token.ok and verdict.token.roles:
            roles = tuple(sorted({*roles, *verdict.token.roles}))
    return AuthzRequest(
        principal_type=_ENTITY_TYPE[event.principal.kind],
        principal_id=event.principal.id,
        roles=roles,
        action=event.action,
        resource_type=_ENTITY_TYPE[event.resource.kind],
        resource_id=event.resource.id,
        facts=derive(event, verdict, inventory),
    )
