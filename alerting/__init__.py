"""From findings to alerts people act on: dedup, routing, grouping, silences, delivery.

The pipeline's :class:`AlertGate` turns findings into alert rows (pure, per batch)
that workers publish to ``ai.alerts``; the :class:`AlertManager`, run by ``vigil
notifier`` for all workers (or in-process by ``vigil run``), routes them by a YAML
configuration, groups them, applies silences, inhibitions and acknowledgements, and
delivers notifications through per-receiver outboxes, all kept in one state database
that survives restarts (:mod:`alerting.state`).
"""

from alerting.config import AlertingConfig, ConfigError, ConfigSource, builtin_config, load_config
from alerting.dispatcher import Ack, Dispatcher
from alerting.gate import AlertGate
from alerting.manager import AlertManager, ManagerOptions
from alerting.matchers import Matcher, MatcherError, parse_matcher
from alerting.model import Alert, fingerprint, fingerprint_of, labels_of
from alerting.notifications import Notification
from alerting.receivers import ReceiverContext, ReceiverFactory
from alerting.silences import Silence, new_silence
from alerting.store import AlertingStore

__all__ = [
    "Ack",
    "Alert",
    "AlertGate",
    "AlertManager",
    "AlertingConfig",
    "AlertingStore",
    "ConfigError",
    "ConfigSource",
    "Dispatcher",
    "ManagerOptions",
    "Matcher",
    "MatcherError",
    "Notification",
    "ReceiverContext",
    "ReceiverFactory",
    "Silence",
    "builtin_config",
    "fingerprint",
    "fingerprint_of",
    "labels_of",
    "load_config",
    "new_silence",
    "parse_matcher",
]
