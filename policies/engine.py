"""Evaluate requests against a bundle: default deny, deduped, cached.

cedarpy costs 60-300 µs per request, far above the per-event budget. So each batch is
deduped, cached decisions are reused, and only the remainder goes to one
``is_authorized_batch`` call. The cache is owned by one bundle revision (loading a new
bundle starts an empty one) and evicts the least recently used decision when full.

What a decision can depend on decides the cache key. The entities handed to Cedar carry
no attributes: a principal is its type, its id and its roles, a resource its type and
id. So unless a policy names a principal or resource by id (``User::"alice"``), two
requests that differ only in those ids get the same decision, and the cache is keyed
by the request's *shape* (types, roles, action, facts): a fleet of thousands of
principals and datasets then needs a few dozen Cedar evaluations instead of one per
(principal, resource, minute). A decision with evaluation errors is cached under the
whole request, since its messages may name the entities.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import cedarpy

from policies.bundle import PolicyBundle, PolicyInfo
from policies.inventory import Inventory
from policies.requests import AuthzRequest

DEFAULT_CACHE_SIZE = 100_000
"""Decisions kept; about 155 bytes each (key, LRU links; decisions are shared), so about
16 MB when full (``bench/pipeline.py`` measures it)."""
_ENTITY_LITERAL = re.compile(r"(\w+)\s*::\s*\"")
_ID_FREE_TYPES = frozenset({"Action", "Role"})
"""Literals of these types are part of every cache key (the action, the roles)."""
DEFAULT_DENY = "default-deny"
"""Pseudo policy id naming the decision when no policy permits the request."""
DEFAULT_DENY_CONTROLS = ("nist-800-207:tenet-6", "nist-800-207:tenet-4")
"""Default deny is the Zero Trust rule itself: access only where a policy grants it."""
EVALUATION_ERROR = "evaluation-error"
"""Pseudo policy id of a request the engine could not evaluate: denied, never allowed."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...] = ()


class PolicyEngine:
    """Decisions for one bundle revision: the policies plus the inventory they judge with."""

    def __init__(
        self,
        bundle: PolicyBundle,
        inventory: Inventory | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.bundle = bundle
        self.inventory = inventory if inventory is not None else Inventory()
        self.cache_size = cache_size
        self.revision = hashlib.sha256(f"{bundle.revision}:{self.inventory.revision}".encode()).hexdigest()[
            :16
        ]
        self._cache = DecisionCache(cache_size)
        self.ids_matter = names_entities(bundle.text)
        self._controls = {info.id: info.controls for info in bundle.policies}
        self._controls[DEFAULT_DENY] = self._controls[EVALUATION_ERROR] = DEFAULT_DENY_CONTROLS
        self._controls_by_ids: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._info_by_id = {info.id: info for info in bundle.policies}
        self.evaluated = 0
        self.cache_hits = 0

    def current(self) -> PolicyEngine:
        """A fixed engine is its own current engine (``PolicyRuntime`` reloads instead)."""
        return self

    def controls_of(self, decision: Decision) -> list[str]:
        """The controls evidenced by the policies that decided, in first-seen order.

        Fixed for a bundle and a set of deciding policies, so worked out once per set.
        """
        ids = decision.policy_ids
        controls = self._controls_by_ids.get(ids)
        if controls is None:
            controls = tuple(dict.fromkeys(c for p in ids for c in self._controls.get(p, ())))
            self._controls_by_ids[ids] = controls
        return list(controls)

    def deciding_policies(self, decision: Decision) -> list[PolicyInfo]:
        """The bundle's description of each policy that decided (pseudo ids have none)."""
        return [info for p in decision.policy_ids if (info := self._info_by_id.get(p)) is not None]

    @property
    def cached(self) -> int:
        """Decisions in the cache now."""
        return len(self._cache)

    def describe(self) -> str:
        return (
            f"revision {self.revision} ({len(self.bundle.policies)} policies, bundle "
            f"{self.bundle.revision}, inventory {self.inventory.revision})"
        )

    def decide_many(self, requests: Sequence[AuthzRequest]) -> list[Decision]:
        found = [self._cached(r) for r in requests]
        pending = list(dict.fromkeys(r for r, d in zip(requests, found, strict=True) if d is None))
        if not pending:
            self.cache_hits += len(requests)
            return found  # type: ignore[return-value]
        evaluated_before = self.evaluated
        fresh: dict[Hashable, Decision] = {}
        while pending:
            # One request per key: the others of its shape share its decision, unless it
            # had errors (cached under the whole request), then they are decided next round.
            representatives = list({self._key(r): r for r in pending}.values())
            for group in _consistent_groups(representatives):
                for request, decision in self._evaluate(group):
                    key = request if decision.errors else self._key(request)
                    fresh[key] = decision
                    self._cache.put(key, decision)
            pending = [r for r in pending if _lookup(fresh, r, self._key(r)) is None]
        self.cache_hits += len(requests) - (self.evaluated - evaluated_before)
        return [
            d if d is not None else _lookup(fresh, r, self._key(r))  # type: ignore[misc]
            for r, d in zip(requests, found, strict=True)
        ]

    def _key(self, request: AuthzRequest) -> Hashable:
        if self.ids_matter:
            return request
        return (request.principal_type, request.roles, request.action, request.resource_type, request.facts)

    def _cached(self, request: AuthzRequest) -> Decision | None:
        cache = self._cache
        decision = cache.get(self._key(request))
        return decision if decision is not None else cache.get(request)

    def _evaluate(self, group: list[AuthzRequest]) -> list[tuple[AuthzRequest, Decision]]:
        entities: dict[tuple[str, str], dict[str, object]] = {}
        for request in group:
            for entity in request.entities():
                uid = entity["uid"]
                assert isinstance(uid, dict)
                entities.setdefault((uid["type"], uid["id"]), entity)
        try:
            results = cedarpy.is_authorized_batch(
                [r.to_cedar() for r in group], self.bundle.policy_set, list(entities.values())
            )
        except Exception as error:  # cedarpy rejects a whole batch for one bad request
            if len(group) > 1:
                return [pair for request in group for pair in self._evaluate([request])]
            self.evaluated += 1
            return [(group[0], Decision(False, (EVALUATION_ERROR,), (str(error),)))]
        if len(group) > 1 and any(r.diagnostics.errors for r in results):
            # A malformed request can poison its batch's results: decide each alone.
            return [pair for request in group for pair in self._evaluate([request])]
        self.evaluated += len(group)
        by_position = self.bundle.by_position
        decided = []
        for request, result in zip(group, results, strict=True):
            # cedarpy returns reasons in no fixed order: bundle order keeps ids reproducible.
            positions = sorted(result.diagnostics.reasons, key=lambda p: int(p.removeprefix("policy")))
            reasons = tuple(by_position[p].id for p in positions)
            errors = tuple(str(e) for e in result.diagnostics.errors)
            allowed = bool(result.allowed) and not errors  # an error never lets a permit through
            if not allowed and (errors or not reasons):
                reasons = (EVALUATION_ERROR,) if errors else (DEFAULT_DENY,)
            decided.append((request, Decision(allowed, reasons, errors)))
        return decided


def _lookup(decisions: dict[Hashable, Decision], request: AuthzRequest, key: Hashable) -> Decision | None:
    decision = decisions.get(key)
    return decision if decision is not None else decisions.get(request)


def names_entities(policy_text: str) -> bool:
    """Whether any policy names a principal or resource by id (``Type::"id"``).

    Conservative: a literal in a comment or string counts too, which only costs cache hits.
    """
    return any(match.group(1) not in _ID_FREE_TYPES for match in _ENTITY_LITERAL.finditer(policy_text))


class DecisionCache:
    """Decisions by key, least recently used evicted first once ``capacity`` is reached."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, Decision] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Decision | None:
        decision = self._entries.get(key)
        if decision is not None:
            self._entries.move_to_end(key)
        return decision

    def put(self, key: Hashable, decision: Decision) -> None:
        entries = self._entries
        entries[key] = decision
        entries.move_to_end(key)
        while len(entries) > self.capacity:
            entries.popitem(last=False)


def _consistent_groups(requests: list[AuthzRequest]) -> list[list[AuthzRequest]]:
    """Split so each principal has one role set per group (one entity per uid)."""
    groups: list[tuple[dict[tuple[str, str], tuple[str, ...]], list[AuthzRequest]]] = []
    for request in requests:
        uid = (request.principal_type, request.principal_id)
        for roles_by_uid, members in groups:
            if roles_by_uid.setdefault(uid, request.roles) == request.roles:
                members.append(request)
                break
        else:
            groups.append(({uid: request.roles}, [request]))
    return [members for _, members in groups]
