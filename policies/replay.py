"""Shadow evaluation: what a candidate bundle would have decided about past events.

Every decision row records the request exactly as the policies saw it (principal,
roles, action, resource, facts), so a candidate can be judged on real history
before it is rolled out. Only the policies change; the facts are the ones derived
when each event was decided.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson

from policies.engine import PolicyEngine
from policies.facts import FACT_DEFAULTS, complete
from policies.requests import AuthzRequest

Change = tuple[str, tuple[str, ...], str, tuple[str, ...]]
"""(old decision, old deciding ids, new decision, new deciding ids)."""

REPLAY_COLUMNS = (
    "event_id, decision, policy_ids, principal_type, principal_id, roles, action, "
    "resource_type, resource_id, facts"
)


@dataclass
class ReplayDiff:
    replayed: int = 0
    skipped: int = 0
    """Rows decided before requests were recorded: nothing to replay."""
    changes: Counter[Change] = field(default_factory=Counter)
    examples: dict[Change, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def changed(self) -> int:
        return sum(self.changes.values())

    def by_policy(self) -> Counter[str]:
        """Changed decisions per policy that decided them before or would decide them now."""
        counts: Counter[str] = Counter()
        for (_, old_ids, _, new_ids), n in self.changes.items():
            for policy_id in set(old_ids) ^ set(new_ids):
                counts[policy_id] += n
        return counts


def replay(rows: Iterable[dict[str, Any]], engine: PolicyEngine, examples: int = 3) -> ReplayDiff:
    diff = ReplayDiff()
    for chunk in _chunks(rows, 5000):
        requests, olds = [], []
        for row in chunk:
            request = _request(row)
            if request is None:
                diff.skipped += 1
                continue
            requests.append(request)
            olds.append(row)
        for row, decision in zip(olds, engine.decide_many(requests), strict=True):
            diff.replayed += 1
            new = "allow" if decision.allowed else "deny"
            change: Change = (row["decision"], tuple(row["policy_ids"]), new, decision.policy_ids)
            if change[0] != change[2] or set(change[1]) != set(change[3]):
                diff.changes[change] += 1
                if len(diff.examples[change]) < examples:
                    diff.examples[change].append(row["event_id"])
    return diff


def _request(row: dict[str, Any]) -> AuthzRequest | None:
    if not row.get("facts") or not row.get("principal_type"):
        return None
    recorded = orjson.loads(row["facts"])
    facts = complete({k: v for k, v in recorded.items() if k in FACT_DEFAULTS})
    return AuthzRequest(
        principal_type=row["principal_type"],
        principal_id=row["principal_id"],
        roles=tuple(row["roles"]),
        action=row["action"],
        resource_type=row["resource_type"],
        resource_id=row["resource_id"],
        facts=facts,
    )


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk
