"""Decide inline questions with the pipeline's stages, and journal every answer.

The same ``PolicyEngine`` (bundle plus inventory, hot-reloaded by ``PolicyRuntime``)
judges API questions and streamed events; signed events are verified by the same
``IdentityVerifier`` (signature, token, freshness, replay) and turned into requests
by ``policies.requests.request_for``. Plain questions become requests through
``policies.inline``. An answer is returned only once its record is in the journal.

A caller asks about itself. Asking about another principal is first decided as
``act_on_behalf`` (the caller as principal, the other principal as resource); when
that is denied, that denial is the answer, recorded like any other.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from api.auth import Caller
from api.journal import Journal
from api.questions import Item, Question
from api.records import Asked, DecisionRecord, decision_record
from identity.verify import IdentityVerifier
from policies.engine import Decision, PolicyEngine
from policies.inline import inline_request, on_behalf_request
from policies.requests import AuthzRequest, request_for
from policies.runtime import PolicyRuntime
from schemas import stored_payload
from schemas.decode import DEFAULT_MAX_BYTES, Rejection, decode
from schemas.events import Event, model_id_of


@dataclass(frozen=True, slots=True)
class Refused:
    """A question that could not be asked (a malformed or oversized signed event)."""

    code: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"error": self.code, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Answer:
    decision_id: str
    allowed: bool
    action: str
    policy_ids: tuple[str, ...]
    controls: tuple[str, ...]
    bundle_revision: str
    errors: tuple[str, ...]
    verified: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": "allow" if self.allowed else "deny",
            "allowed": self.allowed,
            "action": self.action,
            "policy_ids": self.policy_ids,
            "controls": self.controls,
            "bundle_revision": self.bundle_revision,
            "decision_id": self.decision_id,
            "verified": self.verified,
            "errors": self.errors,
        }


@dataclass
class _Pending:
    """One question on its way: the request to decide and what its record needs."""

    request: AuthzRequest
    resource_kind: str
    model_id: str
    verified: bool
    asked: Asked
    on_behalf: AuthzRequest | None = None


class DecisionService:
    def __init__(
        self,
        policies: PolicyRuntime | PolicyEngine,
        identity: IdentityVerifier,
        journal: Journal,
        max_event_bytes: int = DEFAULT_MAX_BYTES,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policies = policies
        self.identity = identity
        self.journal = journal
        self.max_event_bytes = max_event_bytes
        self.wall_clock = wall_clock
        self._asked = itertools.count()
        self.engine = policies.current()
        self._facts_json: dict[object, str] = {}

    def reload(self) -> PolicyEngine:
        """Pick up changed policy files or inventory (an invalid bundle keeps the old one)."""
        engine = self.policies.current()
        if engine is not self.engine:
            self.engine, self._facts_json = engine, {}
        return engine

    def decide(self, caller: Caller, items: Sequence[Item]) -> list[Answer | Refused]:
        """Every question's answer in order; raises ``OSError`` when the journal refuses them."""
        engine, now = self.engine, self.wall_clock()
        planned: list[_Pending | Refused] = [self._plan(caller, item, engine, now) for item in items]
        pending = [p for p in planned if isinstance(p, _Pending)]
        delegations = [p.on_behalf for p in pending if p.on_behalf is not None]
        delegated = iter(engine.decide_many(delegations))
        deciding: list[tuple[_Pending, AuthzRequest, Asked, str, str]] = []
        for plan in pending:
            if plan.on_behalf is not None and not next(delegated).allowed:
                # The record is of the refused delegation: the caller asked, about the principal.
                request, asked = plan.on_behalf, replace(plan.asked, principal_kind=caller.kind)
                deciding.append((plan, request, asked, request.resource_type.lower(), ""))
            else:
                deciding.append((plan, plan.request, plan.asked, plan.resource_kind, plan.model_id))
        decisions = engine.decide_many([request for _, request, _, _, _ in deciding])
        records: list[DecisionRecord] = []
        answers: dict[int, Answer] = {}
        first_offset = self.journal.next_offset  # one thread decides: nothing appends meanwhile
        for (plan, request, asked, resource_kind, model_id), decision in zip(
            deciding, decisions, strict=True
        ):
            offset = first_offset + len(records)
            record = self._record(
                request, decision, engine, now, plan, asked, resource_kind, model_id, offset
            )
            answers[id(plan)] = _answer(record, decision)
            records.append(record)
        if records:
            self.journal.append([orjson.dumps(r.to_json()) for r in records])
        return [p if isinstance(p, Refused) else answers[id(p)] for p in planned]

    def _plan(self, caller: Caller, item: Item, engine: PolicyEngine, now: datetime) -> _Pending | Refused:
        inventory = engine.inventory
        if isinstance(item, Question):
            own = item.principal.id == caller.subject
            request = inline_request(
                item.inline(mfa=own and caller.mfa),
                inventory,
                now,
                token_roles=caller.roles if own else (),
                token_verified=own and caller.token_verified,
            )
            model_id = item.resource.id if item.resource.kind == "model" else ""
            asked = Asked(
                type="question",
                source="api",
                principal_kind=item.principal.kind,
                verify_reason=caller.via,
                key_id=caller.key_id,
                token_status="ok" if caller.token_verified else "none",
                payload=orjson.dumps({"caller": caller.subject, "question": item.model_dump()}).decode(),
            )
            plan = _Pending(request, item.resource.kind, model_id, verified=True, asked=asked)
            principal_id, principal_kind = item.principal.id, item.principal.kind
        else:
            decoded = decode(orjson.dumps(item.event), self.max_event_bytes)
            if isinstance(decoded, Rejection):
                return Refused(decoded.code, decoded.reason)
            event: Event = decoded.event
            # The next place in a log of the questions asked: the same event asked again is a
            # replay, never a redelivery (replay memory takes a place at or below the last as one).
            position = ("api", 0, next(self._asked))
            verdict = self.identity.verify(event, decoded.canonical, position, now)
            request = request_for(event, verdict, inventory)
            asked = Asked(
                type=event.type,
                source=event.source,
                principal_kind=event.principal.kind,
                verify_reason=verdict.reason,
                key_id=verdict.key_id,
                token_status=verdict.token.reason,
                payload=stored_payload(event, decoded.canonical),
                signature=event.signature.value if event.signature else "",
            )
            plan = _Pending(
                request, event.resource.kind, model_id_of(event), verified=verdict.verified, asked=asked
            )
            principal_id, principal_kind = event.principal.id, event.principal.kind
        if principal_id != caller.subject:
            plan.on_behalf = on_behalf_request(
                caller.subject,
                caller.kind,
                caller.roles,
                principal_id,
                principal_kind,
                inventory,
                now,
                token_verified=caller.token_verified,
            )
        return plan

    def _record(
        self,
        request: AuthzRequest,
        decision: Decision,
        engine: PolicyEngine,
        now: datetime,
        plan: _Pending,
        asked: Asked,
        resource_kind: str,
        model_id: str,
        offset: int,
    ) -> DecisionRecord:
        facts_json = self._facts_json.get(request.facts)
        if facts_json is None:
            facts_json = self._facts_json[request.facts] = orjson.dumps(dict(request.facts)).decode()
        return decision_record(
            uuid.uuid4().hex,
            now,
            request,
            decision,
            engine,
            asked=asked,
            verified=plan.verified,
            resource_kind=resource_kind,
            offset=offset,
            model_id=model_id,
            facts_json=facts_json,
        )


def _answer(record: DecisionRecord, decision: Decision) -> Answer:
    row = record.decision
    return Answer(
        decision_id=row.event_id,
        allowed=decision.allowed,
        action=row.action,
        policy_ids=decision.policy_ids,
        controls=tuple(row.controls),
        bundle_revision=row.bundle_revision,
        errors=decision.errors,
        verified=row.verified,
    )
