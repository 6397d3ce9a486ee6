"""Alerts into groups, groups into notifications, on a clock. No I/O, no threads.

The dispatcher holds the live alerts and the groups the route tree puts them in.
``ingest`` takes the alert rows the pipeline stored; ``tick`` advances time:
alerts quiet for ``resolve_timeout`` resolve, silences, inhibitions and
acknowledgements are applied, and every group whose timer is due yields at most
one notification (see :mod:`alerting.notifications` for the kinds). Timers follow
Alertmanager: a new group waits ``group_wait`` to collect its burst, then is looked
at every ``group_interval``; a still-firing, unacknowledged group is reminded
every ``repeat_interval``. Because the clock is injected, tests run hours of
alerting in milliseconds.

Every lifecycle decision runs on processing time, the monitor's own clocks: timers
and resolve timeouts on ``clock``, what an acknowledgement covers on when the
monitor admitted an alert (``fired_at`` of its first row) against when the ack was
given. The event's ``ts`` is the producer's clock, which may run ahead or behind
within the accepted skew; it is kept as evidence (``first_seen``) and never compared.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from alerting.annotate import annotate, evidence_query
from alerting.config import AlertingConfig
from alerting.inhibit import Inhibitor, InhibitRule
from alerting.model import Alert, AlertState, Unsaved, labels_of, mark_unsaved
from alerting.notifications import AlertSnapshot, Notification, NotificationKind
from alerting.records import AlertStateRow
from alerting.routing import Route, build_routes
from alerting.silences import Silence, silencing
from schemas.records import AlertRow

log = logging.getLogger(__name__)

DetailsLookup = Callable[[AlertRow], Mapping[str, object]]


@dataclass
class AlertGroup(Unsaved):
    group_id: str
    route: Route
    labels: dict[str, str]
    created: float
    next_flush: float
    members: dict[str, Alert] = field(default_factory=dict)
    notified: bool = False
    last_notified_at: float | None = None
    last_reminded_at: float = 0.0
    sent_counts: dict[str, int] = field(default_factory=dict)
    sent_states: dict[str, AlertState] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True)
class Ack:
    target_id: str
    acked_by: str
    via: str
    acked_at: datetime
    """When the ack was given: a Slack reply's own timestamp, or when ``vigil alerts ack`` ran."""


@dataclass
class TickResult:
    notifications: list[Notification] = field(default_factory=list)
    states: list[AlertStateRow] = field(default_factory=list)


def _covers(ack: Ack, alert: Alert) -> bool:
    return alert.admitted_at <= ack.acked_at


def _opens(alert: Alert | None, row: AlertRow) -> bool:
    """Whether the row starts a new instance: no live alert of its fingerprint carries its id."""
    return alert is None or alert.alert_id != row.alert_id or alert.state == "resolved"


def group_id_for(route: Route, labels: Mapping[str, str]) -> str:
    identity = route.route_id + "\x1f" + "\x1f".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


class Dispatcher:
    def __init__(
        self,
        config: AlertingConfig,
        clock: Callable[[], float],
        wall_clock: Callable[[], datetime],
        details: DetailsLookup | None = None,
    ) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self.details = details
        self.alerts: dict[str, Alert] = {}
        """The current instance of every alert by fingerprint (resolved ones until reported)."""
        self.groups: dict[str, AlertGroup] = {}
        self.silences: tuple[Silence, ...] = ()
        self.acks: dict[str, Ack] = {}
        self._pending_states: list[AlertStateRow] = []
        self._memberships: dict[str, dict[str, AlertGroup]] = {}
        """The groups each alert instance is a member of, by alert id: finding an alert's groups
        by scanning every group made each tick cost alerts x groups, which an alert storm
        (thousands of distinct fingerprints) turned into seconds per batch."""
        self.reconfigure(config)

    # --- configuration ---------------------------------------------------------------

    def reconfigure(self, config: AlertingConfig) -> None:
        """Apply a new configuration; live alerts are routed again under it.

        Groups whose route and labels are unchanged keep their state (Slack thread,
        timers, counts already shown); groups no route produces any more are dropped.
        """
        self.config = config
        self.root = build_routes(config)
        self.inhibit_rules = tuple(InhibitRule.from_config(r, i) for i, r in enumerate(config.inhibit_rules))
        now = self.clock()
        kept: dict[str, AlertGroup] = {}
        for alert in self.alerts.values():
            for route in self.root.match(alert.labels):
                group = self._group(route, alert, now, kept)
                group.members[alert.alert_id] = alert
        dropped = set(self.groups) - set(kept)
        if dropped:
            log.info("alerting reconfigured: %d group(s) no longer routed", len(dropped))
        self.groups = kept
        self.reindex()

    def reindex(self) -> None:
        """Rebuild the alert-to-groups index from the groups (after they were replaced whole)."""
        self._memberships = {}
        for group in self.groups.values():
            mark_unsaved(group)
            for alert_id in group.members:
                self._memberships.setdefault(alert_id, {})[group.group_id] = group

    def _join(self, group: AlertGroup, alert: Alert) -> None:
        group.members[alert.alert_id] = alert
        mark_unsaved(group)
        self._memberships.setdefault(alert.alert_id, {})[group.group_id] = group

    def _leave(self, group: AlertGroup, alert_id: str) -> None:
        del group.members[alert_id]
        mark_unsaved(group)
        groups = self._memberships.get(alert_id)
        if groups is not None:
            groups.pop(group.group_id, None)
            if not groups:
                del self._memberships[alert_id]

    def _group(
        self, route: Route, alert: Alert, now: float, groups: dict[str, AlertGroup] | None = None
    ) -> AlertGroup:
        target = self.groups if groups is None else groups
        labels = route.group_labels(alert.labels)
        group_id = group_id_for(route, labels)
        group = target.get(group_id)
        if group is None:
            group = self.groups.get(group_id)
            if group is not None and groups is not None:
                group.route, group.members = route, {}  # members are routed again by the caller
            if group is None:
                wait = 0.0 if alert.severity == "critical" else route.group_wait
                group = AlertGroup(group_id, route, labels, created=now, next_flush=now + wait)
            target[group_id] = group
        return group

    # --- inputs ------------------------------------------------------------------------

    def opens_alert(self, row: AlertRow) -> bool:
        """Whether ``ingest`` would open a new alert instance for the row (and ask its details)."""
        return _opens(self.alerts.get(row.fingerprint), row)

    def ingest(self, row: AlertRow) -> None:
        """One stored alert row: a new instance, or more occurrences of a known one."""
        now = self.clock()
        labels = labels_of(row)
        alert = self.alerts.get(row.fingerprint)
        if alert is not None and not _opens(alert, row):
            alert.occurrences = max(alert.occurrences, row.occurrences)
            alert.last_seen = max(alert.last_seen, row.fired_at)
            alert.admitted_at = min(alert.admitted_at, row.fired_at)
            alert.last_event_id = row.event_id
            alert.summary = row.summary
            alert.updated_at = now
            rerouted = alert.labels != labels
            alert.labels, alert.severity, alert.title = labels, row.severity, row.title
            if not rerouted:
                return
        else:
            if alert is not None and alert.state != "resolved":
                self._resolve(alert)
            alert = self._new_alert(row, labels, now)
            self.alerts[row.fingerprint] = alert
        for route in self.root.match(labels):
            group = self._group(route, alert, now)
            if alert.alert_id not in group.members and alert.severity == "critical":
                group.next_flush = min(group.next_flush, now)  # a page does not wait for the group's timer
            self._join(group, alert)
            ack = self.acks.get(group.group_id)
            if ack is not None and not alert.acked_by and _covers(ack, alert):
                alert.acked_by = ack.acked_by  # admitted before the ack, delivered to us after it

    def _new_alert(self, row: AlertRow, labels: dict[str, str], now: float) -> Alert:
        details = self._details(row)
        notes = annotate(self.config, labels, details)
        alert = Alert(
            alert_id=row.alert_id,
            fingerprint=row.fingerprint,
            labels=labels,
            severity=row.severity,
            title=row.title,
            summary=row.summary,
            first_seen=row.ts,
            last_seen=row.fired_at,
            occurrences=row.occurrences,
            last_event_id=row.event_id,
            updated_at=now,
            admitted_at=row.fired_at,
            runbook_url=notes.runbook_url,
            evidence_query=evidence_query(labels, row.ts),
            controls=list(notes.controls),
            details=dict(details),
        )
        ack = self.acks.get(alert.alert_id)
        if ack is not None:
            alert.acked_by = ack.acked_by
        self._record(alert)
        return alert

    def _details(self, row: AlertRow) -> Mapping[str, object]:
        if self.details is None:
            return {}
        try:
            return self.details(row)
        except Exception as error:  # enrichment is a nicety; the alert goes out without it
            log.warning("no details for alert %s: %s", row.alert_id, error)
            return {}

    def set_silences(self, silences: Iterable[Silence]) -> None:
        self.silences = tuple(silences)

    def acknowledge(self, ack: Ack) -> list[str]:
        """Acknowledge an alert instance or a group by id; return the alert ids it covered.

        A group ack covers the alerts the monitor had admitted when the ack was given,
        both on the monitor's clock: an alert admitted later notifies again, whatever
        the ``ts`` its producer stamped on the event (clocks run ahead, consumers lag).
        """
        self.acks[ack.target_id] = ack
        covered: list[Alert] = []
        group = self.groups.get(ack.target_id)
        if group is not None:
            covered = [a for a in group.members.values() if _covers(ack, a)]
        covered += [a for a in self.alerts.values() if a.alert_id == ack.target_id]
        now = self.clock()
        for alert in covered:
            if alert.state == "resolved" or alert.acked_by:
                continue
            alert.acked_by = ack.acked_by
            for g in self._groups_of(alert):
                g.next_flush = min(g.next_flush, now)  # show the acknowledgement promptly
        return [a.alert_id for a in covered]

    # --- time --------------------------------------------------------------------------

    def tick(self, force: bool = False) -> TickResult:
        """Advance to the clock's now; ``force`` flushes every group regardless of timers."""
        now = self.clock()
        for alert in list(self.alerts.values()):
            if alert.state != "resolved" and now - alert.updated_at >= self.config.global_.resolve_timeout:
                self._resolve(alert)
        self._apply_suppression()
        result = TickResult()
        for group in list(self.groups.values()):
            if force or now >= group.next_flush:
                notification = self._flush(group, now)
                if notification is not None:
                    result.notifications.append(notification)
        for fingerprint, alert in list(self.alerts.items()):
            if alert.state == "resolved" and not self._groups_of(alert):
                del self.alerts[fingerprint]
        result.states, self._pending_states = self._pending_states, []
        return result

    def take_states(self) -> list[AlertStateRow]:
        """Alert state rows recorded since the last tick (by ingests and acks), handed over once."""
        states, self._pending_states = self._pending_states, []
        return states

    def next_due(self) -> float | None:
        """When ``tick`` next has something to do (a group timer or a resolve timeout)."""
        times = [g.next_flush for g in self.groups.values()]
        timeout = self.config.global_.resolve_timeout
        times += [a.updated_at + timeout for a in self.alerts.values() if a.state != "resolved"]
        return min(times, default=None)

    def _resolve(self, alert: Alert) -> None:
        alert.state = "resolved"
        alert.resolved_at = self.wall_clock()
        self._record(alert)

    def _apply_suppression(self) -> None:
        now = self.wall_clock()
        inhibitor = Inhibitor(self.inhibit_rules, self.alerts.values())
        for alert in self.alerts.values():
            if alert.state == "resolved":
                continue
            state: AlertState = "acknowledged" if alert.acked_by else "firing"
            silence = silencing(self.silences, alert.labels, now)
            rule = "" if silence else inhibitor.inhibiting_rule(alert)
            if silence:
                state, suppressed_by = "silenced", silence
            elif rule:
                state, suppressed_by = "inhibited", f"inhibit:{rule}"
            else:
                suppressed_by = ""
            if (state, suppressed_by) != (alert.state, alert.suppressed_by):
                alert.state, alert.suppressed_by = state, suppressed_by
                self._record(alert)

    def _groups_of(self, alert: Alert) -> list[AlertGroup]:
        groups = self._memberships.get(alert.alert_id, {}).values()
        return [g for g in groups if g.members.get(alert.alert_id) is alert]

    def _flush(self, group: AlertGroup, now: float) -> Notification | None:
        group.next_flush = now + group.route.group_interval
        if group.route.muted(self.wall_clock()):
            return None  # counted on; the first notification after the mute says what changed
        members = list(group.members.values())
        kind = self._kind(group, members, now)
        notification = None
        if kind is not None:
            notification = self._notification(group, kind, members, now)
            group.notified = True
            group.last_notified_at = now
            if kind != "update":
                group.last_reminded_at = now
            group.sent_counts = {a.alert_id: a.occurrences for a in members}
            group.sent_states = {a.alert_id: a.state for a in members}
            for alert in members:
                self._record(alert)
        for alert in members:
            if alert.state == "resolved":  # reported now, or never shown: done either way
                self._leave(group, alert.alert_id)
        if not group.members:
            del self.groups[group.group_id]
        return notification

    def _kind(self, group: AlertGroup, members: list[Alert], now: float) -> NotificationKind | None:
        active = [a for a in members if a.active]
        if not group.notified:
            return "firing" if active else None
        was_active = {i for i, s in group.sent_states.items() if s in ("firing", "acknowledged")}
        if not any(a.state != "resolved" for a in members):
            return "resolved" if was_active else None
        joined = [a for a in active if a.alert_id not in was_active]
        left = [a for a in members if a.state == "resolved" and a.alert_id in was_active]
        if joined or left:
            return "changed"
        unacked = [a for a in active if not a.acked_by]
        if unacked and now - group.last_reminded_at >= group.route.repeat_interval:
            return "repeat"
        counted = any(a.occurrences > group.sent_counts.get(a.alert_id, 0) for a in active)
        restated = any(
            a.alert_id in group.sent_states and group.sent_states[a.alert_id] != a.state for a in members
        )
        return "update" if counted or restated else None

    def _notification(
        self, group: AlertGroup, kind: NotificationKind, members: list[Alert], now: float
    ) -> Notification:
        group.seq += 1
        was_shown = set(group.sent_states) if group.notified else set()
        snapshots = tuple(
            AlertSnapshot(
                alert_id=a.alert_id,
                fingerprint=a.fingerprint,
                state=a.state,
                severity=a.severity,
                title=a.title,
                summary=a.summary,
                labels=dict(a.labels),
                first_seen=a.first_seen,
                last_seen=a.last_seen,
                occurrences=a.occurrences,
                new_occurrences=a.occurrences - group.sent_counts.get(a.alert_id, 0),
                joined=a.alert_id not in was_shown,
                runbook_url=a.runbook_url,
                evidence_query=a.evidence_query,
                controls=tuple(a.controls),
                acked_by=a.acked_by,
            )
            for a in members
            if a.active or a.alert_id in group.sent_states
        )
        since = group.last_notified_at if group.last_notified_at is not None else group.created
        return Notification(
            notification_id=f"{group.group_id}-{group.seq}",
            group_id=group.group_id,
            receiver=group.route.receiver,
            kind=kind,
            group_labels=dict(group.labels),
            alerts=snapshots,
            created_at=self.wall_clock(),
            window_seconds=now - since,
            resolve_timeout=self.config.global_.resolve_timeout,
            seq=group.seq,
        )

    def _record(self, alert: Alert) -> None:
        groups = self._groups_of(alert)
        self._pending_states.append(
            AlertStateRow(
                alert_id=alert.alert_id,
                fingerprint=alert.fingerprint,
                group_ids=[g.group_id for g in groups],
                receivers=sorted({g.route.receiver for g in groups}),
                state=alert.state,
                severity=alert.severity,
                title=alert.title,
                summary=alert.summary,
                labels=dict(alert.labels),
                runbook_url=alert.runbook_url,
                evidence_query=alert.evidence_query,
                controls=list(alert.controls),
                first_seen=alert.first_seen,
                last_seen=alert.last_seen,
                occurrences=alert.occurrences,
                acked_by=alert.acked_by,
                suppressed_by=alert.suppressed_by,
                updated_at=self.wall_clock(),
            )
        )
