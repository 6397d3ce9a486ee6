"""The route tree: which receivers an alert goes to, and how it is grouped there.

As in Alertmanager: an alert enters at the root and descends into the first
child whose matchers it satisfies, depth first; ``continue: true`` on a child lets
it try the following siblings too. When no child matches, the node itself is the
match. Children inherit the receiver, ``group_by`` and timings they do not set.

>>> from alerting.config import parse_config
>>> config = parse_config({
...     "receivers": [{"name": "ml"}, {"name": "pager"}],
...     "route": {"receiver": "ml", "routes": [
...         {"matchers": ['severity=~"high|critical"'], "receiver": "pager"}]},
... })
>>> [r.receiver for r in build_routes(config).match({"severity": "high"})]
['pager']
>>> [r.receiver for r in build_routes(config).match({"severity": "medium"})]
['ml']
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from alerting.config import ALL_LABELS, AlertingConfig, RouteConfig
from alerting.matchers import Matcher, match_all
from alerting.time_intervals import TimeInterval

DEFAULT_GROUP_BY = ("stage", "rule", "model")
DEFAULT_GROUP_WAIT = 10.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0


@dataclass(frozen=True)
class Route:
    """One node of the tree with everything inherited filled in."""

    route_id: str
    """Stable across reloads while the path's matchers and receiver stay the same."""
    receiver: str
    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    continue_: bool
    children: tuple[Route, ...]
    mute: tuple[TimeInterval, ...] = ()
    active_only: tuple[TimeInterval, ...] = ()

    def muted(self, moment: datetime) -> bool:
        """Whether the route's time intervals hold its notifications back at ``moment``."""
        if any(interval.active(moment) for interval in self.mute):
            return True
        return bool(self.active_only) and not any(interval.active(moment) for interval in self.active_only)

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes an alert with these labels is notified through."""
        if not match_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.children:
            matched = child.match(labels)
            if matched:
                found.extend(matched)
                if not child.continue_:
                    break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if ALL_LABELS in self.group_by:
            return dict(labels)
        return {name: labels[name] for name in self.group_by if labels.get(name)}


def build_routes(config: AlertingConfig) -> Route:
    root = config.route
    defaults = Route(
        route_id="",
        receiver=root.receiver or "",
        matchers=(),
        group_by=DEFAULT_GROUP_BY,
        group_wait=DEFAULT_GROUP_WAIT,
        group_interval=DEFAULT_GROUP_INTERVAL,
        repeat_interval=DEFAULT_REPEAT_INTERVAL,
        continue_=False,
        children=(),
    )
    intervals = {t.name: t.interval() for t in config.time_intervals}
    return _build(root, defaults, "", intervals)


def _build(node: RouteConfig, parent: Route, parent_id: str, intervals: dict[str, TimeInterval]) -> Route:
    receiver = node.receiver or parent.receiver
    group_by = node.group_by if node.group_by is not None else parent.group_by
    identity = f"{parent_id}/{receiver}:{','.join(str(m) for m in node.matchers)}:{','.join(group_by)}"
    route_id = hashlib.sha256(identity.encode()).hexdigest()[:8]
    inherited = Route(
        route_id=route_id,
        receiver=receiver,
        matchers=node.matchers,
        group_by=group_by,
        group_wait=node.group_wait if node.group_wait is not None else parent.group_wait,
        group_interval=node.group_interval if node.group_interval is not None else parent.group_interval,
        repeat_interval=node.repeat_interval if node.repeat_interval is not None else parent.repeat_interval,
        continue_=node.continue_,
        children=(),
    )
    children = tuple(_build(child, inherited, identity, intervals) for child in node.routes)
    return Route(
        **{
            **inherited.__dict__,
            "children": children,
            "mute": tuple(intervals[name] for name in node.mute_time_intervals),
            "active_only": tuple(intervals[name] for name in node.active_time_intervals),
        }
    )
