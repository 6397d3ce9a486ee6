"""Evaluate requests against a bundle: default deny, deduped, cached.

cedarpy costs 60-300 µs per request, far above the per-event budget, while real
traffic repeats the same (principal, action, resource, facts) constantly. So each
batch is deduped, cached decisions are reused, and only the remainder goes to one
``is_authorized_batch`` call. The cache is keyed by request value and owned by one
bundle revision: loading a new bundle starts an empty cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import cedarpy

from policies.bundle import PolicyBundle
from policies.inventory import Inventory
from policies.requests import AuthzRequest

DEFAULT_CACHE_SIZE = 100_000
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
        self._cache: dict[AuthzRequest, Decision] = {}
        self._controls = {info.id: info.controls for info in bundle.policies}
        self._controls[DEFAULT_DENY] = self._controls[EVALUATION_ERROR] = DEFAULT_DENY_CONTROLS
        self.evaluated = 0
        self.cache_hits = 0

    def current(self) -> PolicyEngine:
        """A fixed engine is its own current engine (``PolicyRuntime`` reloads instead)."""
        return self

    def controls_of(self, decision: Decision) -> list[str]:
        """The controls evidenced by the policies that decided, in first-seen order."""
        return list(dict.fromkeys(c for p in decision.policy_ids for c in self._controls.get(p, ())))

    def describe(self) -> str:
        return (
            f"revision {self.revision} ({len(self.bundle.policies)} policies, bundle "
            f"{self.bundle.revision}, inventory {self.inventory.revision})"
        )

    def decide_many(self, requests: Sequence[AuthzRequest]) -> list[Decision]:
        cache = self._cache
        found = [cache.get(r) for r in requests]
        missing = list(dict.fromkeys(r for r, d in zip(requests, found, strict=True) if d is None))
        self.cache_hits += len(requests) - len(missing)
        if not missing:
            return found  # type: ignore[return-value]
        if len(cache) + len(missing) > self.cache_size:
            cache.clear()
        for group in _consistent_groups(missing):
            self._evaluate(group)
        return [d if d is not None else cache[r] for r, d in zip(requests, found, strict=True)]

    def _evaluate(self, group: list[AuthzRequest]) -> None:
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
                for request in group:
                    self._evaluate([request])
                return
            self.evaluated += 1
            self._cache[group[0]] = Decision(False, (EVALUATION_ERROR,), (str(error),))
            return
        if len(group) > 1 and any(r.diagnostics.errors for r in results):
            # A malformed request can poison its batch's results: decide each alone.
            for request in group:
                self._evaluate([request])
            return
        self.evaluated += len(group)
        by_position = self.bundle.by_position
        for request, result in zip(group, results, strict=True):
            # cedarpy returns reasons in no fixed order: bundle order keeps ids reproducible.
            positions = sorted(result.diagnostics.reasons, key=lambda p: int(p.removeprefix("policy")))
            reasons = tuple(by_position[p].id for p in positions)
            errors = tuple(str(e) for e in result.diagnostics.errors)
            allowed = bool(result.allowed) and not errors  # an error never lets a permit through
            if not allowed and (errors or not reasons):
                reasons = (EVALUATION_ERROR,) if errors else (DEFAULT_DENY,)
            self._cache[request] = Decision(allowed, reasons, errors)


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
