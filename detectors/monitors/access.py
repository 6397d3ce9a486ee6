"""Access anomalies per principal: the continuous-monitoring half of Zero Trust.

Each principal's access events build a small profile: its usual request rate, the
usual size of its reads, the resources and client addresses it uses, the hours it
works and its recent denials. Departures become findings:

- ``access-burst``: events in the current bucket (``bucket_seconds``) above every
  one of ``min_events``, ``ratio`` x the usual rate and the Poisson quantile of the
  usual rate at ``p_value``; silent until a bucket is back to normal.
- ``access-bulk-read``: one read or export whose records (or bytes) are far above
  the principal's own history (robust z-score of log size) and above an absolute
  floor; silent while consecutive events stay bulk.
- ``access-new-resource`` / ``access-new-ip``: a resource, or a client network
  (/24, IPv6 /48), the principal never used, after ``warmup_events``; at most one finding per
  ``cooldown_seconds``, later novelties in the cool-down are learned quietly.
- ``access-off-hours``: activity in an hour of the day (UTC) that held under
  ``rare_share`` of the principal's events over at least ``min_days``.
- ``access-denied-burst``: ``count`` denied attempts within ``within_seconds``.

Time is the events' own ``ts`` (replays and backfills judge the same way live
traffic does).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import math
import zlib
from collections import deque
from datetime import UTC, datetime
from typing import Any

from detectors.config import AccessConfig, BurstConfig
from detectors.findings import Signal
from detectors.monitors.budget import Budget
from detectors.state import StateError
from schemas.events import AccessEvent

BULK_ACTIONS = ("read", "export")


class _Novelty:
    """A bounded set of things seen (least recently used leave first) and a cool-down.

    Items are kept as stable 64-bit digests, not as their text: about 60 bytes an item
    instead of 150, the same in every process (a restored snapshot still recognises
    them), and a collision (one in 2**64) only means one novelty finding not raised.
    """

    __slots__ = ("quiet_until", "seen")

    def __init__(self) -> None:
        self.seen: dict[int, None] = {}
        self.quiet_until = 0.0

    def add(self, item: str, limit: int) -> int:
        """Remember ``item``: 1 when it was new, -1 when it was new and pushed an older one out, else 0."""
        key = int.from_bytes(hashlib.blake2b(item.encode(), digest_size=8).digest(), "little")
        if key in self.seen:
            del self.seen[key]  # re-inserted last: the most recently used
            self.seen[key] = None
            return 0
        self.seen[key] = None
        if len(self.seen) > limit:
            del self.seen[next(iter(self.seen))]
            return -1
        return 1


class _Principal:
    __slots__ = (
        "bucket",
        "bucket_count",
        "buckets",
        "bulk_alarm",
        "bulk_stats",
        "burst_alarm",
        "denied",
        "denied_alarm",
        "events",
        "first_ts",
        "hours",
        "ips",
        "off_hours_quiet",
        "rate",
        "resources",
        "used",
    )

    def __init__(self) -> None:
        self.used = 0
        """When it was last seen, in the partition's count of access events (restores the
        order in which the least recently seen leave)."""
        self.events = 0
        self.first_ts = 0.0
        self.bucket = -1
        self.bucket_count = 0
        self.buckets = 0
        self.rate = 0.0
        self.burst_alarm = False
        self.bulk_stats = [0.0, 0.0, 0.0]  # EW mean, variance, count of log1p(records)
        self.bulk_alarm = False
        self.resources = _Novelty()
        self.ips = _Novelty()
        self.hours = [0] * 24
        self.off_hours_quiet = 0.0
        self.denied: deque[float] = deque()
        self.denied_alarm = False


PRINCIPAL_BYTES = 1_500
"""Memory of one principal's state without its remembered items (tracemalloc, CPython 3.11)."""
ITEM_BYTES = 80
"""Memory of one remembered resource or client network (65-82 bytes measured, by set size)."""


class Access:
    """Per-principal access state, bounded in principals and in bytes.

    Each principal remembers up to ``max_tracked`` resources and networks, so at the
    principal cap the state could reach gigabytes. ``max_bytes`` bounds the estimate
    (``PRINCIPAL_BYTES`` per principal plus ``ITEM_BYTES`` per remembered item): past
    it, the principals seen least recently are forgotten first, and start their
    warm-up again if they come back.
    """

    def __init__(self, budget: Budget, max_bytes: int = 64 << 20) -> None:
        self.budget = budget
        self.max_bytes = max_bytes
        self.forgotten = 0
        """Principals dropped to stay within ``max_bytes``."""
        self._principals: dict[str, _Principal] = {}
        self._items = 0
        self._sequence = 0
        self.changed: set[int] = set()
        """Groups of principals (``group_of``) changed since the last ``export_group``."""

    @property
    def keys(self) -> int:
        return len(self._principals)

    @property
    def estimated_bytes(self) -> int:
        return len(self._principals) * PRINCIPAL_BYTES + self._items * ITEM_BYTES

    def observe(self, event: AccessEvent, config: AccessConfig) -> list[Signal]:
        principal = self._principals.pop(event.principal.id, None)
        if principal is None:
            if not self.budget.take():
                return []
            principal = _Principal()
            principal.first_ts = event.ts.timestamp()
        self._principals[event.principal.id] = principal  # last: the most recently seen
        self._sequence += 1
        principal.used = self._sequence
        self.changed.add(group_of(event.principal.id))
        now = event.ts.timestamp()
        principal.events += 1
        signals = [
            s
            for s in (
                self._burst(event, principal, config, now),
                self._bulk(event, principal, config),
                self._novel(event, principal, config, now, "resource"),
                self._novel(event, principal, config, now, "ip"),
                self._off_hours(event, principal, config, now),
                self._denied(event, principal, config, now),
            )
            if s is not None
        ]
        self._within_bytes()
        return signals

    def export_groups(self, groups: set[int]) -> dict[int, list[list[Any]]]:
        """The principals of these groups (``group_of``) as plain data; marks them saved."""
        self.changed -= groups
        exported: dict[int, list[list[Any]]] = {group: [] for group in groups}
        for principal_id, principal in self._principals.items():
            saved = exported.get(group_of(principal_id))
            if saved is not None:
                saved.append(_export(principal_id, principal))
        return exported

    def import_groups(self, groups: list[list[list[Any]]]) -> None:
        """Install principals saved by ``export_group``, least recently seen first."""
        try:
            restored = sorted(
                (_import(saved) for group in groups for saved in group), key=lambda r: r[1].used
            )
        except (TypeError, ValueError, IndexError) as error:
            raise StateError(f"access state: {type(error).__name__}: {error}") from None
        for principal_id, principal in restored:
            self._principals[principal_id] = principal
            self._items += len(principal.resources.seen) + len(principal.ips.seen)
            self._sequence = max(self._sequence, principal.used)
        self.budget.used += len(restored)

    def _within_bytes(self) -> None:
        while self.estimated_bytes > self.max_bytes and len(self._principals) > 1:
            oldest = next(iter(self._principals))
            dropped = self._principals.pop(oldest)
            self.changed.add(group_of(oldest))
            self._items -= len(dropped.resources.seen) + len(dropped.ips.seen)
            self.budget.used -= 1
            self.forgotten += 1

    def _burst(self, event: AccessEvent, p: _Principal, config: AccessConfig, now: float) -> Signal | None:
        section = config.burst
        bucket = int(now // section.bucket_seconds)
        if p.bucket < 0:
            p.bucket = bucket
        if bucket > p.bucket:
            # close the finished bucket and the empty ones after it into the usual rate
            weight = 1.0 / min(p.buckets + 1, 60)
            p.rate += weight * (p.bucket_count - p.rate)
            gap = min(bucket - p.bucket - 1, 10_000)
            if gap > 0:
                p.rate *= (1.0 - 1.0 / 60) ** gap
            p.buckets += 1 + gap
            if p.burst_alarm and p.bucket_count < _burst_limit(p.rate, section):
                p.burst_alarm = False
            p.bucket, p.bucket_count = bucket, 0
        p.bucket_count += 1
        if p.burst_alarm or p.buckets < section.warmup_buckets:
            return None
        limit = _burst_limit(p.rate, section)
        if p.bucket_count < limit:
            return None
        p.burst_alarm = True
        return Signal(
            rule="access-burst",
            subject="rate",
            severity="high",
            message=(
                f"{event.principal.id} made {p.bucket_count} access requests within "
                f"{section.bucket_seconds:g}s, against a usual {p.rate:.2f} per bucket (limit {limit})"
            ),
            details={
                "change": "rate-up",
                "magnitude": {"events": p.bucket_count, "usual": p.rate, "limit": limit},
                "since": {
                    "ts": _iso(bucket * section.bucket_seconds),
                    "events_ago": p.bucket_count,
                    "located": True,
                },
                "reference": {"buckets": p.buckets, "mean_per_bucket": p.rate},
                "window": {"bucket_seconds": section.bucket_seconds, "events": p.bucket_count},
                "resource": f"{event.resource.kind}:{event.resource.id}",
            },
        )

    def _bulk(self, event: AccessEvent, p: _Principal, config: AccessConfig) -> Signal | None:
        if event.action not in BULK_ACTIONS:
            return None
        section = config.bulk
        size = math.log1p(event.records)
        stats = p.bulk_stats
        mean, variance, count = stats
        sd = math.sqrt(variance)
        z = (size - mean) / (sd + 0.25) if count >= section.warmup_events else 0.0
        big = event.records >= section.min_records or event.bytes >= section.min_bytes
        bulk = big and z >= section.z
        # learn with a clipped pull so one bulk read does not become the new normal
        count += 1.0
        weight = max(1.0 / count, 0.02)
        delta = size - mean
        if count > section.warmup_events:
            limit = 3.0 * (sd + 0.25)
            delta = max(-limit, min(limit, delta))
        stats[0] = mean + weight * delta
        stats[1] = (1.0 - weight) * (variance + weight * delta * delta)
        stats[2] = count
        if not bulk:
            p.bulk_alarm = False
            return None
        if p.bulk_alarm:
            return None
        p.bulk_alarm = True
        usual = math.expm1(mean)
        return Signal(
            rule="access-bulk-read",
            subject=f"{event.resource.kind}:{event.resource.id}",
            severity="high",
            message=(
                f"{event.principal.id} {event.action} of {event.records} records ({event.bytes} bytes) "
                f"from {event.resource.kind} {event.resource.id}, against a usual ~{usual:.0f} records "
                f"(z {z:.1f} on log size)"
            ),
            details={
                "change": "size-up",
                "magnitude": {"records": event.records, "bytes": event.bytes, "z": z, "usual_records": usual},
                "since": {"ts": event.ts.isoformat(), "events_ago": 0, "located": True},
                "reference": {"events": int(count - 1), "mean_log_records": mean, "sd_log_records": sd},
                "window": {"records": event.records, "bytes": event.bytes},
            },
        )

    def _novel(
        self, event: AccessEvent, p: _Principal, config: AccessConfig, now: float, what: str
    ) -> Signal | None:
        section = config.new_resource if what == "resource" else config.new_ip
        if not section.enabled:
            return None
        novelty = p.resources if what == "resource" else p.ips
        item = (
            f"{event.resource.kind}:{event.resource.id}"
            if what == "resource"
            else client_network(event.client.ip)
        )
        known = len(novelty.seen)
        added = novelty.add(item, section.max_tracked)
        if added == 0:
            return None
        self._items += max(added, 0)
        if p.events <= config.warmup_events or now < novelty.quiet_until:
            return None
        novelty.quiet_until = now + section.cooldown_seconds
        noun = "resource" if what == "resource" else f"client network (address {event.client.ip})"
        return Signal(
            rule=f"access-new-{what}",
            subject=item,
            severity="medium",
            message=(
                f"{event.principal.id} used a {noun} it never used before: {item} ({event.action}, "
                f"{event.outcome}); {known} known after {p.events - 1} events"
            ),
            details={
                "change": "new",
                "item": item,
                "magnitude": {"known": known},
                "since": {"ts": event.ts.isoformat(), "events_ago": 0, "located": True},
                "reference": {"events": p.events - 1, "known": known},
                "window": {"action": event.action, "outcome": event.outcome},
            },
        )

    def _off_hours(
        self, event: AccessEvent, p: _Principal, config: AccessConfig, now: float
    ) -> Signal | None:
        section = config.off_hours
        hour = event.ts.astimezone(UTC).hour
        total = sum(p.hours)
        share = p.hours[hour] / total if total else 0.0
        p.hours[hour] += 1
        if not section.enabled or total < section.min_events:
            return None
        if now - p.first_ts < section.min_days * 86400 or now < p.off_hours_quiet:
            return None
        if share >= section.rare_share:
            return None
        p.off_hours_quiet = now + section.cooldown_seconds
        usual = sorted(range(24), key=lambda h: -p.hours[h])[:3]
        return Signal(
            rule="access-off-hours",
            subject=f"hour-{hour:02d}",
            severity="medium",
            message=(
                f"{event.principal.id} active at {hour:02d}h UTC, an hour that held {share:.2%} of its "
                f"{total} events (busiest hours: {', '.join(f'{h:02d}h' for h in usual)})"
            ),
            details={
                "change": "off-hours",
                "magnitude": {"share": share, "threshold": section.rare_share},
                "since": {"ts": event.ts.isoformat(), "events_ago": 0, "located": True},
                "reference": {"events": total, "hours": list(p.hours)},
                "window": {"hour_utc": hour},
            },
        )

    def _denied(self, event: AccessEvent, p: _Principal, config: AccessConfig, now: float) -> Signal | None:
        section = config.denied_burst
        recent = p.denied
        while recent and recent[0] < now - section.within_seconds:
            recent.popleft()
        if event.outcome != "denied":
            if not recent:
                p.denied_alarm = False
            return None
        recent.append(now)
        if len(recent) > section.count:
            recent.popleft()
        if len(recent) < section.count or p.denied_alarm:
            return None
        p.denied_alarm = True
        return Signal(
            rule="access-denied-burst",
            subject="denied",
            severity="high",
            message=(
                f"{event.principal.id} was denied {len(recent)} times within "
                f"{now - recent[0]:.0f}s (limit {section.count} in {section.within_seconds:g}s), "
                f"latest {event.action} on {event.resource.kind} {event.resource.id}"
            ),
            details={
                "change": "denied-burst",
                "magnitude": {"denied": len(recent), "seconds": now - recent[0]},
                "since": {"ts": _iso(recent[0]), "events_ago": len(recent), "located": True},
                "reference": {"limit": section.count, "within_seconds": section.within_seconds},
                "window": {"denied": len(recent)},
            },
        )


GROUPS = 64
"""Principals are saved in this many groups per partition: only groups with activity
since the last snapshot are written again."""


def group_of(principal_id: str) -> int:
    return zlib.crc32(principal_id.encode()) % GROUPS


def _export(principal_id: str, p: _Principal) -> list[Any]:
    return [
        principal_id,
        p.used,
        p.events,
        p.first_ts,
        p.bucket,
        p.bucket_count,
        p.buckets,
        p.rate,
        p.burst_alarm,
        list(p.bulk_stats),
        p.bulk_alarm,
        [list(p.resources.seen), p.resources.quiet_until],
        [list(p.ips.seen), p.ips.quiet_until],
        list(p.hours),
        p.off_hours_quiet,
        list(p.denied),
        p.denied_alarm,
    ]


def _import(saved: list[Any]) -> tuple[str, _Principal]:
    p = _Principal()
    (principal_id, p.used, p.events, p.first_ts, p.bucket, p.bucket_count, p.buckets, p.rate) = saved[:8]
    p.burst_alarm, p.bulk_stats, p.bulk_alarm = bool(saved[8]), [float(x) for x in saved[9]], bool(saved[10])
    for novelty, (seen, quiet_until) in ((p.resources, saved[11]), (p.ips, saved[12])):
        novelty.seen = dict.fromkeys(int(k) for k in seen)
        novelty.quiet_until = float(quiet_until)
    p.hours = [int(h) for h in saved[13]]
    p.off_hours_quiet = float(saved[14])
    p.denied = deque(float(t) for t in saved[15])
    p.denied_alarm = bool(saved[16])
    return str(principal_id), p


@functools.lru_cache(maxsize=8192)
def client_network(address: str) -> str:
    """The network an address belongs to: /24 for IPv4, /48 for IPv6, else the text.

    Novelty is judged per network: clients move between addresses of a pool (DHCP,
    NAT, load balancers) all the time, while a new network is worth a look. Parsing
    an address is a few microseconds and a fleet's clients come back to the same
    addresses, so the last few thousand are remembered (about 1.5 MB at most).

    >>> client_network("10.0.4.17"), client_network("2001:db8:1:2::7"), client_network("vpn-gw")
    ('10.0.4.0/24', '2001:db8:1::/48', 'vpn-gw')
    """
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    prefix = 24 if parsed.version == 4 else 48
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False))


def _burst_limit(rate: float, section: BurstConfig) -> int:
    return max(section.min_events, math.ceil(section.ratio * rate), poisson_quantile(rate, section.p_value))


def poisson_quantile(rate: float, p_value: float) -> int:
    """Smallest k with P(X >= k) < p_value for X ~ Poisson(rate).

    >>> poisson_quantile(2.0, 1e-6), poisson_quantile(100.0, 1e-6)
    (13, 152)
    """
    if rate <= 0.0:
        return 1
    term = math.exp(-rate) if rate < 700 else 0.0
    if term == 0.0:  # normal approximation for very large rates
        return math.ceil(rate + 5.0 * math.sqrt(rate))
    cumulative, k = term, 0
    while 1.0 - cumulative >= p_value:
        k += 1
        term *= rate / k
        cumulative += term
        if k > rate + 50 * math.sqrt(rate) + 50:
            break
    return k + 1


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()
