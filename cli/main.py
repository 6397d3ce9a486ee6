"""The ``vigil`` command: demo, run, worker, serve, gate, sql, publish."""

from __future__ import annotations

import http.client
import logging
import re
import signal
import sys
import threading
import time
import urllib.error
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import click

from cli.audit import audit_group
from cli.policies import controls_group, policy_group
from cli.progress import counted_lines, input_size, progress
from cli.support import UsageProblem, as_user_error, existing_store, load_settings
from identity.keyring import load_keyring
from identity.signing import Ed25519Signer
from schemas.json_schema import EVENT_MODELS, render
from sinks.clickhouse import StoreLockedError, StoreUnavailableError, connect, redact
from sinks.query_server import QueryError, query_remote
from sinks.read_only import check_read_only
from streams import local
from vigil.kafka_clients import check_access
from vigil.log_format import configure_logging
from vigil.metrics import Health, Metrics
from vigil.metrics import serve as serve_metrics
from vigil.pipeline import Pipeline
from vigil.runtime import build_notifiers, build_pipeline, open_store, settle_memory
from vigil.settings import Settings

log = logging.getLogger("vigil")

EXPLORE_SQL = """\
Explore the results (while this store is in use, too):
  vigil sql "SELECT decision, policy_ids, count() FROM decisions_unique GROUP BY ALL ORDER BY 3 DESC"
  vigil sql "SELECT stage, detector_or_rule, severity, message FROM findings_unique ORDER BY ts LIMIT 20"
  vigil sql "SELECT code, reason, topic, offset FROM rejected_unique"
  vigil sql "SELECT event_id, verify_reason, source FROM events_unique WHERE NOT verified"
  vigil sql "SELECT toStartOfMinute(ts) AS t, avg(features['amount']) FROM events_unique
             WHERE model_id = 'fraud-v3' GROUP BY t ORDER BY t"
"""


_settings = load_settings


class VigilCommands(click.Group):
    """Every subcommand's known problems end it with one line and the right exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            said = as_user_error(error)
            if said is None:
                raise
            raise said from error


def _setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


@click.group(cls=VigilCommands)
@click.version_option(package_name="vigil")
def main() -> None:
    """Vigil: governance and Zero Trust for AI systems, while they run."""


@main.command()
@click.option("--events", default=6000, show_default=True, help="Ordinary events to generate.")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--fresh",
    is_flag=True,
    help="Start over: delete an earlier demo's store, alert state and exported checkpoints first.",
)
def demo(events: int, seed: int, fresh: bool) -> None:
    """Generate realistic traffic and run it through the pipeline, embedded.

    On a data directory that already holds a store the demo stops and says so: its
    counts would add to the earlier run's. ``--fresh`` starts over.
    """
    from vigil.demo import (
        DemoKeysError,
        DemoTraffic,
        earlier_run,
        start_fresh,
        write_demo_inventory,
        write_demo_keys,
    )

    settings = _settings()
    _setup_logging(settings)
    if not settings.embedded:
        raise UsageProblem("the demo runs on the embedded store; unset VIGIL_CLICKHOUSE_URL")
    if earlier := earlier_run(settings):
        if not fresh:
            raise UsageProblem(
                f"{earlier} holds an earlier run, whose counts would add to this one's; "
                "`vigil demo --fresh` starts over, or set VIGIL_DATA_DIR to a new directory"
            )
        for removed in start_fresh(settings):
            click.echo(f"removed {removed}")
    try:
        secrets_by_source = write_demo_keys(settings.keys_path)
    except DemoKeysError as error:
        raise UsageProblem(str(error)) from error
    write_demo_inventory(settings.data_dir / "inventory.yaml")
    traffic = DemoTraffic(secrets_by_source, events=events, seed=seed)
    click.echo(f"Vigil demo: {events} events for 3 models and 8 principals, store {settings.store_url}")
    stats = _run_lines(settings, traffic.lines(), topic="demo")
    _summary(stats, settings)
    click.echo(EXPLORE_SQL)


@main.command()
def notifier() -> None:
    """Route, group and deliver the alerts every worker publishes to ai.alerts.

    Run one; a second one on the same state directory waits as a standby and takes
    over when the first dies. State (open alerts and groups, Slack threads, silences,
    acks, notifications owed) survives restarts. SIGTERM or Ctrl-C stops it (exit 0).
    """
    from streams.notifier import run_notifier
    from streams.topics import ensure_topics
    from vigil.runtime import build_alert_manager, open_notifier_store

    settings = _settings()
    _setup_logging(settings)
    try:
        ensure_topics(settings)
    except Exception as error:
        raise click.ClickException(f"cannot reach Kafka at {settings.kafka_brokers}: {error}") from error
    opened = []

    def build_manager():  # type: ignore[no-untyped-def]
        try:  # only once this process is the active notifier: the store may be the standby's too
            store = open_notifier_store(settings)
        except StoreUnavailableError as error:
            raise click.ClickException(str(error)) from error
        opened.append(store)
        return build_alert_manager(settings, store.store)

    try:
        run_notifier(settings, build_manager, settings.log_level.upper())
    finally:
        for store in opened:
            store.close()


@main.command()
@click.option(
    "--input", "source", required=True, type=click.File("rb"), help="JSON-lines file, or - for stdin."
)
def run(source: BinaryIO) -> None:
    """Run the pipeline over JSON-lines events (the same code path as the demo)."""
    settings = _settings()
    _setup_logging(settings)
    name = getattr(source, "name", "-")
    topic = "stdin" if name in ("-", "<stdin>") else Path(name).name
    with progress(f"run {topic}", input_size(source), in_bytes=True) as advance:
        stats = _run_lines(settings, counted_lines(source, advance), topic=topic)
    _summary(stats, settings)


def _run_lines(settings: Settings, lines: Iterable[bytes], topic: str) -> local.RunStats:
    pipeline = _build_pipeline(settings)
    metrics, health = Metrics(), Health(settings.metrics.stall_seconds)
    server = serve_metrics(settings.metrics, metrics, health)
    opened = open_store(settings)
    notifiers = build_notifiers(settings)
    try:
        return local.run(
            local.messages_from_lines(lines, topic),
            pipeline,
            opened.store,
            notifiers,
            metrics=metrics,
            health=health,
        )
    finally:
        if server is not None:
            server.close()
        notifiers.close(flush_groups=True)
        opened.close()


def _build_pipeline(settings: Settings) -> Pipeline:
    pipeline = build_pipeline(settings)
    settle_memory()
    return pipeline


def _summary(stats: local.RunStats, settings: Settings) -> None:
    decisions = ", ".join(f"{k} {v}" for k, v in sorted(stats.decisions.items())) or "none"
    click.echo(
        f"\n{stats.messages} messages in {stats.elapsed:.2f}s ({stats.rate:,.0f}/s): "
        f"{stats.events} events stored, {stats.rejected} rejected, decisions: {decisions}, "
        f"{stats.findings} findings, {stats.alerts} alerts.\nStore: {redact(settings.store_url)}\n"
    )


@main.command()
@click.argument("query")
@click.option(
    "--format", "fmt", default="PrettyCompact", show_default=True, help="Any ClickHouse output format."
)
@click.option("--write", is_flag=True, help="Allow statements that change data (needs the store to itself).")
def sql(query: str, fmt: str, write: bool) -> None:
    """Run a read-only query against the store, even while another process owns it."""
    settings = _settings()
    url = existing_store(settings)
    output_format = "" if _names_format(query) else fmt
    deadline = time.monotonic() + OWNER_CHANGE_SECONDS
    while True:
        try:
            output = _query(url, query, output_format, write)
            break
        except _OwnerChangingError as changing:
            if time.monotonic() >= deadline:
                raise click.ClickException(
                    f"the store {redact(url)} did not open ({changing}); if another process is "
                    "starting or stopping with it, try again once it has"
                ) from None
            time.sleep(0.25)
    sys.stdout.buffer.write(output)


OWNER_CHANGE_SECONDS = 15.0
"""How long ``vigil sql`` waits out a store owner that is starting or stopping."""


class _OwnerChangingError(Exception):
    """The store could not be reached, most likely because its owner is between states:
    locked without a query server yet, just gone, or taking the lock as this one opens it."""


def _query(url: str, query: str, output_format: str, write: bool) -> bytes:
    """The query's output, directly or through the owner's query server."""
    try:
        client = connect(url)
    except StoreLockedError:
        if write:
            raise click.ClickException("--write needs the store to itself; stop its owner first") from None
        try:
            return query_remote(Path(url.removeprefix("chdb://")), query, output_format)
        except QueryError as error:
            cause = error.__cause__
            if isinstance(cause, OSError | ValueError) and not isinstance(cause, urllib.error.HTTPError):
                raise _OwnerChangingError(str(error)) from error
            raise
        except (OSError, http.client.HTTPException) as error:  # the owner closed mid-answer
            raise _OwnerChangingError(f"the owner stopped answering: {error!r}") from error
    except StoreUnavailableError:
        raise  # a server that does not answer is said at once
    except Exception as error:  # e.g. an owner took the lock between the check and the open
        raise _OwnerChangingError(" ".join(str(error).split())) from error
    try:
        if not write:
            check_read_only(client, query)
        return bytes(
            client.raw_query(query, fmt=output_format or None, settings=None if write else {"readonly": 2})
        )
    except Exception as error:
        raise click.ClickException(" ".join(str(error).split())) from error
    finally:
        client.close()


def _names_format(query: str) -> bool:
    """A query ending in its own ``FORMAT x`` keeps it; ``--format`` then does not apply."""
    return re.search(r"\bFORMAT\s+\w+\s*;?\s*$", query, re.IGNORECASE) is not None


@main.command()
def worker() -> None:
    """Consume the event topics into the store; many workers share one consumer group.

    SIGTERM or Ctrl-C stops it after the batches in hand are stored and committed (exit 0).
    Any error it cannot retry ends it with exit 1; the next start resumes from the last commit.
    """
    from streams.kafka_worker import consumer_health, run_worker
    from streams.topics import TopicTimeError, ensure_broker_time, ensure_topics

    settings = _settings()
    _setup_logging(settings)
    pipeline = _build_pipeline(settings)
    check_access(settings)  # fails in seconds, in one line, when no broker answers or admits it
    try:
        ensure_topics(settings)
        ensure_broker_time(settings)
    except TopicTimeError as error:
        raise click.ClickException(str(error)) from error
    except Exception as error:
        raise click.ClickException(
            f"preparing the topics on {settings.kafka_brokers} failed: {error}"
        ) from error
    metrics, health = Metrics(), consumer_health(settings)
    server = serve_metrics(settings.metrics, metrics, health)
    opened = open_store(settings)
    stopping = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stopping.set())
    log.info("worker on %s, store %s", settings.kafka_brokers, redact(settings.store_url))
    try:
        consumed = run_worker(settings, pipeline, opened.store, stopping, metrics, health).messages
    except Exception as error:
        log.exception("worker stopped by an error; the next start resumes from the last commit")
        raise SystemExit(1) from error
    finally:
        if server is not None:
            server.close()
        opened.close()
    log.info("worker stopped after %d messages", consumed)


@main.command()
@click.option(
    "--input", "source", required=True, type=click.File("rb"), help="JSON-lines file, or - for stdin."
)
@click.option("--key-id", default=None, help="Sign with this key (default: a key for each event's source).")
@click.option("--raw", "raw_topic", default=None, help="Send lines untouched to this topic.")
@click.option(
    "--private-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Ed25519 private key (PEM) to sign with, under --key-id.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print each message as it would be sent (topic, key, signed value) instead of sending it.",
)
@click.option(
    "--timestamp",
    "timestamp",
    type=click.Choice(["send", "event"]),
    default="send",
    show_default=True,
    help="Kafka message time: the send time, or each event's ts (a backfill; see docs/events.md).",
)
def publish(
    source: BinaryIO,
    key_id: str | None,
    raw_topic: str | None,
    private_key: Path | None,
    dry_run: bool,
    timestamp: str,
) -> None:
    """Sign JSON-lines events and send each to the topic of its type."""
    from streams.publisher import Outgoing, preview
    from streams.publisher import publish as publish_lines

    if timestamp == "event" and raw_topic is not None:
        raise click.ClickException("--timestamp event reads each event's ts: not with --raw")
    settings = _settings()
    _setup_logging(settings)
    keyring = signer = None
    if private_key is not None:
        if key_id is None:
            raise click.ClickException("--private-key needs --key-id")
        signer = _ed25519_signer(key_id, private_key)
    elif raw_topic is None:
        keyring = load_keyring(settings.keys_path)
    outgoing = Outgoing(settings, keyring, key_id, raw_topic, signer, event_time=timestamp == "event")
    if dry_run:
        shown, report = preview(source, outgoing)
        for message in shown:
            click.echo(message.decode())
    else:
        check_access(settings)
        with progress("publish", input_size(source), in_bytes=True) as advance:
            report = publish_lines(counted_lines(source, advance), outgoing)
    for problem in report.errors:
        click.echo(f"not sent: {problem}", err=True)
    if dry_run:
        click.echo(f"{report.sent} messages shown, nothing sent", err=True)
    else:
        click.echo(f"sent {report.sent} messages to {settings.kafka_brokers}")
    if report.errors:
        raise SystemExit(1)


@main.command()
@click.option(
    "--type",
    "event_type",
    type=click.Choice(list(EVENT_MODELS)),
    default=None,
    help="Only this event type (default: every type, chosen by `type`).",
)
def schema(event_type: str | None) -> None:
    """Print the JSON Schema of the events producers send."""
    click.echo(render(event_type), nl=False)


def _ed25519_signer(key_id: str, path: Path) -> Ed25519Signer:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as error:
        raise click.ClickException(f"{path}: not a PEM private key") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise click.ClickException(f"{path}: not an Ed25519 private key")
    return Ed25519Signer(key_id, key)


main.add_command(policy_group)
main.add_command(controls_group)

from cli.alerts import alerts, silence  # noqa: E402

main.add_command(silence)
main.add_command(alerts)
main.add_command(audit_group)

from cli.gate import gate  # noqa: E402
from cli.serve import serve  # noqa: E402

main.add_command(serve)
main.add_command(gate)
