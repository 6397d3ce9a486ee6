"""``vigil silence`` and ``vigil alerts``: silences and acknowledgements from the terminal.

Both write to ClickHouse, where every worker reads them within
``VIGIL_ALERTING_REFRESH_SECONDS``. When a worker owns the embedded store (chDB
admits one process), the command hands the change to that worker through its
alerting directory and waits until the worker has written it; reads go through
the worker's read-only query server, as ``vigil sql`` does.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from alerting.matchers import MatcherError, parse_matcher
from alerting.records import AckRow
from alerting.requests import submit_request
from alerting.silences import new_silence
from alerting.store import AlertingStore
from cli.support import (
    DURATION,
    OUTPUT,
    UsageProblem,
    existing_store,
    load_settings,
    print_json,
    print_table,
)
from sinks.clickhouse import StoreLockedError, connect, migrate
from sinks.query_server import QueryError
from sinks.reader import RemoteReader

HANDOVER_TIMEOUT = 20.0


@dataclass
class _Store:
    store: AlertingStore
    owned_elsewhere: bool
    state_dir: Path


@contextmanager
def _store() -> Iterator[_Store]:
    settings = load_settings()
    state_dir = settings.alerting.state_dir or settings.data_dir / "alerting"
    url = existing_store(settings)
    try:
        client = connect(url)
    except StoreLockedError:
        store_dir = Path(url.removeprefix("chdb://"))
        yield _Store(AlertingStore(RemoteReader(store_dir)), True, state_dir)
        return
    try:
        migrate(client)
        yield _Store(AlertingStore.over_client(client), False, state_dir)
    finally:
        client.close()


def _handover(opened: _Store, request: dict[str, Any], applied: Callable[[], bool]) -> None:
    """Leave the request for the store's owner and wait until it is written."""
    submit_request(opened.state_dir, request)
    deadline = time.monotonic() + HANDOVER_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if applied():
                return
        except QueryError:
            pass  # the owner is between restarts; it reads the request when it is back
        time.sleep(0.5)
    raise click.ClickException(
        f"the process that owns the store has not applied the request within {HANDOVER_TIMEOUT:.0f}s; "
        f"it stays queued in {opened.state_dir / 'requests'} and is applied when that process runs"
    )


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _when(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)[:19]


# --- vigil silence ---------------------------------------------------------------------


@click.group()
def silence() -> None:
    """Silence alerts by label for a while (recorded, not lost)."""


@silence.command("add")
@click.option("--match", "matches", multiple=True, required=True, help="Label matcher, e.g. model=fraud-v3.")
@click.option(
    "--for", "duration", type=DURATION, required=True, help="How long: 30m, 1h30m, 7d, 2w or ISO 8601 (PT2H)."
)
@click.option("--reason", required=True, help="Why: shown wherever the silence is listed.")
@click.option("--by", default=None, help="Who silences (default: the current user).")
def silence_add(matches: tuple[str, ...], duration: timedelta, reason: str, by: str | None) -> None:
    """Add a silence: matching alerts are tracked but do not notify until it ends."""
    try:
        matchers = [parse_matcher(m) for m in matches]
        created = new_silence(matchers, duration, reason, _who(by), datetime.now(UTC))
    except (MatcherError, ValueError) as error:
        raise UsageProblem(str(error)) from None
    with _store() as opened:
        if opened.owned_elsewhere:
            row = created.row()
            request = {
                "kind": "silence",
                **row._asdict(),
                **{k: getattr(row, k).isoformat() for k in ("starts_at", "ends_at", "updated_at")},
            }
            _handover(opened, request, lambda: opened.store.has_silence(created.silence_id))
        else:
            opened.store.write({"silences": [created.row()]})
    click.echo(
        f"silence {created.silence_id} until {_when(created.ends_at)} UTC: "
        f"{', '.join(str(m) for m in created.matchers)}"
    )


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@OUTPUT
def silence_list(show_all: bool, output: str) -> None:
    """List active (or all) silences."""
    with _store() as opened:
        found = opened.store.silences(datetime.now(UTC), include_expired=show_all)
    if output == "json":
        print_json([s.row()._asdict() for s in found])
        return
    if not found:
        click.echo("no silences" if show_all else "no active silences")
        return
    rows = [
        [
            s.silence_id,
            _when(s.starts_at),
            _when(s.ends_at),
            s.created_by,
            " ".join(str(m) for m in s.matchers),
            s.reason,
        ]
        for s in found
    ]
    print_table(["ID", "STARTS (UTC)", "ENDS (UTC)", "BY", "MATCHERS", "REASON"], rows, wrap={"REASON"})


@silence.command("expire")
@click.argument("silence_id")
def silence_expire(silence_id: str) -> None:
    """End a silence now."""
    now = datetime.now(UTC)
    with _store() as opened:
        current = opened.store.silence(silence_id)
        if current is None:
            raise UsageProblem(f"no silence {silence_id} (see `vigil silence list --all`)")
        if not current.active(now) and current.ends_at <= now:
            click.echo(f"silence {silence_id} already ended at {_when(current.ends_at)} UTC")
            return
        if opened.owned_elsewhere:
            request = {"kind": "expire", "silence_id": silence_id}
            _handover(opened, request, lambda: _ended(opened.store, silence_id))
        else:
            opened.store.write({"silences": [current.expired(now).row()]})
    click.echo(f"silence {silence_id} expired")


def _ended(store: AlertingStore, silence_id: str) -> bool:
    found = store.silence(silence_id)
    return found is not None and found.ends_at <= datetime.now(UTC)


# --- vigil alerts ----------------------------------------------------------------------


@click.group()
def alerts() -> None:
    """Look at alerts and acknowledge them."""


@alerts.command("ack")
@click.argument("target_id")
@click.option("--by", default=None, help="Who acknowledges (default: the current user).")
@click.option("--note", default="", help="A note kept with the acknowledgement.")
def alerts_ack(target_id: str, by: str | None, note: str) -> None:
    """Acknowledge an alert (its id) or a whole group (the id in its Slack message)."""
    who = _who(by)
    at = datetime.now(UTC)
    with _store() as opened:
        if not opened.store.known_target(target_id):
            raise UsageProblem(f"no alert or alert group {target_id} (see `vigil alerts list`)")
        if opened.owned_elsewhere:
            request = {
                "kind": "ack",
                "target_id": target_id,
                "acked_by": who,
                "note": note,
                "acked_at": at.isoformat(),
            }
            _handover(opened, request, lambda: opened.store.has_ack(target_id, at))
        else:
            opened.store.write({"alert_acks": [AckRow(target_id, who, "cli", note, at)]})
    click.echo(f"{target_id} acknowledged by {who}; the next update of its notifications shows it")


@alerts.command("list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(["firing", "acknowledged", "silenced", "inhibited", "resolved"]),
    help="Only alerts in this state (repeatable).",
)
@click.option("--undelivered", is_flag=True, help="Show notifications not (yet) delivered instead.")
@click.option("--limit", default=50, show_default=True)
@OUTPUT
def alerts_list(states: tuple[str, ...], undelivered: bool, limit: int, output: str) -> None:
    """List alerts, newest first, or the notifications still owed to receivers."""
    with _store() as opened:
        if undelivered:
            owed = opened.store.undelivered(limit)
            if output == "json":
                print_json(owed)
                return
            if not owed:
                click.echo("every notification was delivered")
                return
            rows = [
                [
                    r["notification_id"],
                    r["receiver"],
                    r["kind"],
                    r["status"],
                    str(r["attempts"]),
                    _when(r["created_at"]),
                    r["last_error"],
                ]
                for r in owed
            ]
            header = ["NOTIFICATION", "RECEIVER", "KIND", "STATUS", "TRIES", "CREATED (UTC)", "LAST ERROR"]
            print_table(header, rows, wrap={"LAST ERROR"})
            return
        found = opened.store.alerts(states, limit)
    if output == "json":
        print_json(found)
        return
    if not found:
        click.echo("no alerts")
        return
    rows = [
        [
            r["alert_id"],
            ",".join(r["group_ids"]),
            r["state"]
            + (f" by {r['acked_by']}" if r["acked_by"] else "")
            + (f" ({r['suppressed_by']})" if r["suppressed_by"] else ""),
            r["severity"],
            str(r["occurrences"]),
            _when(r["last_seen"]),
            r["title"],
        ]
        for r in found
    ]
    header = ["ALERT", "GROUPS", "STATE", "SEVERITY", "COUNT", "LAST SEEN (UTC)", "TITLE"]
    print_table(header, rows, wrap={"GROUPS", "STATE", "TITLE"})
