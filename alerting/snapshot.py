"""The dispatcher's state as documents, and back: what a restarted notifier restores.

Alerts are keyed by ``alert_id`` (a group may still hold a resolved instance whose
fingerprint already names a newer one), groups by ``group_id`` with their route's
id, timers, and what their last notification showed; the acks and the map from
fingerprint to current instance travel in the ``dispatcher`` documents. Timers are
readings of the dispatcher's clock, so a notifier that restores them must run on a
clock that survives restarts (epoch seconds), which ``vigil notifier`` does.

:class:`SnapshotWriter` remembers what it saved last and writes only documents that
changed, so a transaction carries the few alerts and groups a batch touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson

from alerting.dispatcher import Ack, AlertGroup, Dispatcher
from alerting.model import Alert, mark_unsaved, unsaved
from alerting.routing import Route
from alerting.state import StateStore

log = logging.getLogger(__name__)

_ALERT_TIMES = ("first_seen", "last_seen", "admitted_at", "resolved_at")


def alert_from_document(doc: dict[str, Any]) -> Alert:
    times = {name: datetime.fromisoformat(doc[name]) if doc[name] else None for name in _ALERT_TIMES}
    return Alert(**{**doc, **times})


def group_document(group: AlertGroup) -> dict[str, Any]:
    return {
        "group_id": group.group_id,
        "route_id": group.route.route_id,
        "labels": group.labels,
        "created": group.created,
        "next_flush": group.next_flush,
        "members": list(group.members),
        "notified": group.notified,
        "last_notified_at": group.last_notified_at,
        "last_reminded_at": group.last_reminded_at,
        "sent_counts": group.sent_counts,
        "sent_states": group.sent_states,
        "seq": group.seq,
    }


def _routes(root: Route) -> dict[str, Route]:
    found = {root.route_id: root}
    for child in root.children:
        found.update(_routes(child))
    return found


def restore(dispatcher: Dispatcher, state: StateStore) -> int:
    """Load the saved alerts, groups and acks into a fresh dispatcher; returns open groups."""
    alerts = {alert_id: alert_from_document(doc) for alert_id, doc in state.documents("alerts").items()}
    extra = state.documents("dispatcher")
    current = extra.get("current", {})
    dispatcher.alerts = {fp: alerts[alert_id] for fp, alert_id in current.items() if alert_id in alerts}
    dispatcher.acks = {
        target: Ack(a["target_id"], a["acked_by"], a["via"], datetime.fromisoformat(a["acked_at"]))
        for target, a in extra.get("acks", {}).items()
    }
    routes = _routes(dispatcher.root)
    unrouted = 0
    dispatcher.groups = {}
    for group_id, doc in state.documents("groups").items():
        route = routes.get(doc["route_id"])
        if route is None:
            unrouted += 1
            continue
        members = {alert_id: alerts[alert_id] for alert_id in doc["members"] if alert_id in alerts}
        dispatcher.groups[group_id] = AlertGroup(
            group_id=group_id,
            route=route,
            labels=doc["labels"],
            created=doc["created"],
            next_flush=doc["next_flush"],
            members=members,
            notified=doc["notified"],
            last_notified_at=doc["last_notified_at"],
            last_reminded_at=doc["last_reminded_at"],
            sent_counts=doc["sent_counts"],
            sent_states=doc["sent_states"],
            seq=doc["seq"],
        )
    dispatcher.reindex()
    if unrouted:  # the routing changed while stopped: route the open alerts again under the new one
        log.info("%d saved group(s) belong to routes that no longer exist; routing again", unrouted)
        dispatcher.reconfigure(dispatcher.config)
    return len(dispatcher.groups)


class SnapshotWriter:
    """Writes the dispatcher's changed documents into the caller's transaction.

    Alerts and groups are encoded only when assigned since the last save
    (:class:`alerting.model.Unsaved`), so a save costs what the batch changed, not
    what is live; after a rolled-back transaction the next save compares everything.
    """

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self._saved: dict[str, dict[str, bytes]] = {}
        self.forget()

    def save(self, dispatcher: Dispatcher) -> None:
        alerts = {a.alert_id: a for a in dispatcher.alerts.values()}
        for group in dispatcher.groups.values():
            alerts.update(group.members)
        self._save("alerts", alerts, orjson.dumps)  # orjson writes dataclasses natively
        self._save("groups", dispatcher.groups, lambda group: orjson.dumps(group_document(group)))
        extra = {
            "current": {fp: a.alert_id for fp, a in dispatcher.alerts.items()},
            "acks": dispatcher.acks,
        }
        self._save("dispatcher", extra, orjson.dumps, compare_all=True)
        self._full = False

    def _save(
        self, table: str, items: Mapping[str, Any], encode: Callable[[Any], bytes], compare_all: bool = False
    ) -> None:
        saved = self._saved[table]
        changed: dict[str, bytes] = {}
        for key, item in items.items():
            if compare_all or self._full or key not in saved or unsaved(item):
                document = encode(item)
                if saved.get(key) != document:
                    changed[key] = document
                if not compare_all:
                    mark_unsaved(item, False)
        removed = saved.keys() - items.keys()
        if changed or removed:
            self.state.put_documents(table, changed, removed)
            for key in removed:
                del saved[key]
            saved.update(changed)

    def forget(self) -> None:
        """After a rolled-back transaction: the next save compares with what is really stored."""
        self._saved = {
            table: {key: orjson.dumps(doc) for key, doc in self.state.documents(table).items()}
            for table in ("alerts", "groups", "dispatcher")
        }
        self._full = True
