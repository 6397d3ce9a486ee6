"""Alerting's tables in ClickHouse: silences, acknowledgements, alert states, notifications.

:class:`AlertingStore` reads through any :class:`SqlReader`, either a client of its
own or, for the CLI while a worker owns the embedded store, that worker's
read-only query server (``sinks.reader.RemoteReader``), and writes only with a client.
Writes are batched by the alert manager and never block the stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import orjson

from alerting.dispatcher import Ack
from alerting.records import AckRow, AlertStateRow, NotificationRow, SilenceRow
from alerting.silences import Silence
from schemas.records import AlertRow

ROW_TYPES: dict[str, type[NamedTuple]] = {
    "alert_states": AlertStateRow,
    "silences": SilenceRow,
    "alert_acks": AckRow,
    "notifications": NotificationRow,
}


Parameters = Mapping[str, str | int]
"""Values bound to ``{name:Type}`` placeholders: never spliced into the SQL text."""
FindingKey = tuple[str, str, str]
"""A finding as an alert row names it: event id, stage, detector or rule."""


class SqlReader(Protocol):
    def rows(self, sql: str, parameters: Parameters | None = None) -> list[dict[str, Any]]: ...


class ClientReader:
    def __init__(self, client: Any) -> None:
        self.client = client

    def rows(self, sql: str, parameters: Parameters | None = None) -> list[dict[str, Any]]:
        return list(self.client.query(sql, parameters=dict(parameters or {})).named_results())


def as_utc(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace(" ", "T"))
    if not isinstance(value, datetime):
        raise TypeError(f"expected a time, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def time_parameter(moment: datetime) -> str:
    """A ``DateTime64(3, 'UTC')`` parameter value, the same through a client or the query server.

    Milliseconds, the precision the tables store: a time written and then looked for
    again (an ack just requested) must compare equal to itself.
    """
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class AlertingStore:
    def __init__(self, reader: SqlReader, client: Any = None) -> None:
        self.reader = reader
        self.client = client

    @classmethod
    def over_client(cls, client: Any) -> AlertingStore:
        return cls(ClientReader(client), client)

    def write(self, tables: Mapping[str, Sequence[NamedTuple]]) -> None:
        if self.client is None:
            raise RuntimeError("this alerting store is read-only")
        for table, rows in tables.items():
            if rows:
                self.client.insert(table, list(rows), column_names=list(ROW_TYPES[table]._fields))

    def silences(self, now: datetime, include_expired: bool = False) -> list[Silence]:
        where = "" if include_expired else " WHERE ends_at > {now:DateTime64(3, 'UTC')}"
        rows = self.reader.rows(
            "SELECT silence_id, matchers, starts_at, ends_at, created_by, reason, updated_at "
            f"FROM silences FINAL{where} ORDER BY starts_at",
            {"now": time_parameter(now)},
        )
        return [
            Silence.from_row(
                SilenceRow(
                    silence_id=r["silence_id"],
                    matchers=list(r["matchers"]),
                    starts_at=as_utc(r["starts_at"]),
                    ends_at=as_utc(r["ends_at"]),
                    created_by=r["created_by"],
                    reason=r["reason"],
                    updated_at=as_utc(r["updated_at"]),
                )
            )
            for r in rows
        ]

    def silence(self, silence_id: str) -> Silence | None:
        found = [
            s for s in self.silences(datetime.now(UTC), include_expired=True) if s.silence_id == silence_id
        ]
        return found[0] if found else None

    def acks(self, since: datetime) -> list[Ack]:
        rows = self.reader.rows(
            "SELECT target_id, acked_by, via, acked_at FROM alert_acks FINAL "
            "WHERE acked_at >= {since:DateTime64(3, 'UTC')} ORDER BY acked_at",
            {"since": time_parameter(since)},
        )
        return [Ack(r["target_id"], r["acked_by"], r["via"], as_utc(r["acked_at"])) for r in rows]

    def finding_details(self, row: AlertRow) -> dict[str, object]:
        """The ``details`` of the finding behind an alert row (controls, runbooks, statistics).

        The row names the model of that finding, the first column of the table's key: without
        it every new alert read the whole table, which grows fastest in an alert storm.
        """
        rows = self.reader.rows(
            "SELECT details FROM findings WHERE model_id = {model:String} AND event_id = {event:String} "
            "AND stage = {stage:String} AND detector_or_rule = {rule:String} LIMIT 1",
            {"model": row.model_id, "event": row.event_id, "stage": row.stage, "rule": row.detector_or_rule},
        )
        if not rows:
            return {}
        details = orjson.loads(rows[0]["details"] or "{}")
        return details if isinstance(details, dict) else {}

    def findings_details(self, rows: Sequence[AlertRow]) -> dict[FindingKey, dict[str, object]]:
        """``finding_details`` of many alert rows in one query, by (event, stage, rule).

        A batch of an alert storm brings hundreds of new alerts; a query each cost a few
        milliseconds apiece, which made the lookups most of the notifier's time. Lists
        travel as JSON strings, which every reader passes whatever characters ids hold.
        """
        if not rows:
            return {}
        found = self.reader.rows(
            "SELECT event_id, stage, detector_or_rule, details FROM findings "
            "WHERE has(JSONExtract({models:String}, 'Array(String)'), model_id) "
            "AND has(JSONExtract({events:String}, 'Array(String)'), event_id)",
            {
                "models": orjson.dumps(sorted({row.model_id for row in rows})).decode(),
                "events": orjson.dumps(sorted({row.event_id for row in rows})).decode(),
            },
        )
        details: dict[FindingKey, dict[str, object]] = {}
        for finding in found:
            key = (finding["event_id"], finding["stage"], finding["detector_or_rule"])
            if key not in details:
                parsed = orjson.loads(finding["details"] or "{}")
                details[key] = parsed if isinstance(parsed, dict) else {}
        return details

    def alerts(self, states: Sequence[str] = (), limit: int = 100) -> list[dict[str, Any]]:
        where = " WHERE has(splitByChar(',', {states:String}), state)" if states else ""
        return self.reader.rows(
            "SELECT alert_id, state, severity, title, occurrences, first_seen, last_seen, acked_by, "
            f"suppressed_by, group_ids, receivers FROM alert_states FINAL{where} "
            "ORDER BY last_seen DESC LIMIT {limit:UInt32}",
            {"states": ",".join(states), "limit": int(limit)},
        )

    def known_target(self, target_id: str) -> bool:
        """Whether an alert instance or group of that id was ever recorded."""
        rows = self.reader.rows(
            "SELECT count() AS n FROM alert_states WHERE alert_id = {target:String} "
            "OR has(group_ids, {target:String})",
            {"target": target_id},
        )
        return bool(rows and int(rows[0]["n"]))

    def undelivered(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.reader.rows(
            "SELECT notification_id, receiver, kind, status, attempts, last_error, headline, created_at "
            "FROM notifications FINAL WHERE status != 'delivered' "
            "ORDER BY created_at LIMIT {limit:UInt32}",
            {"limit": int(limit)},
        )

    def has_silence(self, silence_id: str) -> bool:
        rows = self.reader.rows(
            "SELECT count() AS n FROM silences WHERE silence_id = {silence:String}", {"silence": silence_id}
        )
        return bool(rows and int(rows[0]["n"]))

    def has_ack(self, target_id: str, acked_at: datetime) -> bool:
        rows = self.reader.rows(
            "SELECT count() AS n FROM alert_acks WHERE target_id = {target:String} "
            "AND acked_at >= {at:DateTime64(3, 'UTC')}",
            {"target": target_id, "at": time_parameter(acked_at)},
        )
        return bool(rows and int(rows[0]["n"]))
