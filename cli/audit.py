"""``vigil audit``: verify the trail, prove one event, check a proof, show the public key.

Exit codes: 0 verified, 1 the trail or proof failed verification, 2 verification
could not run (no store, no key, unreadable input).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
from clickhouse_connect.driver.exceptions import ClickHouseError

from audit.config import export_dir, published_key_path, signing_key_path
from audit.export import DirectoryExport
from audit.keys import AuditKeyError, TrustedKeys, load_public_keys
from audit.proof import ProofError, build_proof, check_proof
from audit.source import ClickHouseSource, Entry, LedgerSource, RemoteSource
from audit.tables_check import check_tables
from audit.verify import Expected, ExternalCheckpoint, Report, Verifier
from cli.progress import Advance, counted, progress
from cli.support import existing_store, load_settings
from schemas.durations import parse_duration
from sinks.clickhouse import StoreLockedError, connect, redact
from sinks.query_server import QueryError
from vigil.settings import Settings


class CannotVerify(click.ClickException):
    exit_code = 2


class Moment(click.ParamType):
    """ISO 8601 (no zone means UTC) or an age in the one duration grammar: ``90m``, ``1h30m``, ``7d``."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            return datetime.now(UTC) - parse_duration(text)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is neither an ISO 8601 time nor an age like 24h or 1h30m", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_settings = load_settings


@contextmanager
def _source(settings: Settings) -> Iterator[LedgerSource]:
    """The store directly, or through its owner's query server while it is in use."""
    url = existing_store(settings)
    try:
        client = connect(url)
    except StoreLockedError:
        yield RemoteSource(Path(url.removeprefix("chdb://")))
        return
    except Exception as error:
        raise CannotVerify(f"cannot open {redact(settings.store_url)}: {error}") from error
    try:
        yield ClickHouseSource(client)
    finally:
        client.close()


def _keys(settings: Settings, paths: tuple[Path, ...]) -> TrustedKeys:
    chosen = list(paths) or [published_key_path(settings)]
    try:
        return load_public_keys(chosen)
    except AuditKeyError as error:
        raise CannotVerify(f"{error}; pass the published key with --public-key") from error


def _copies(settings: Settings, directory: Path | None, kafka: bool) -> list[ExternalCheckpoint]:
    if directory is not None and not directory.is_dir():
        raise CannotVerify(f"no checkpoint directory at {directory}")
    copies = list(DirectoryExport(directory or export_dir(settings)).read())
    if kafka:
        from audit.kafka_export import read_checkpoints
        from streams.topics import AUDIT_TOPIC
        from vigil.kafka_clients import aiokafka_config

        try:
            copies += asyncio.run(read_checkpoints(aiokafka_config(settings), settings.topic(AUDIT_TOPIC)))
        except Exception as error:
            raise CannotVerify(
                f"cannot read checkpoints from Kafka {settings.kafka_brokers}: {error}"
            ) from error
    return copies


def _guarded(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except (ClickHouseError, QueryError) as error:
        raise CannotVerify(f"reading the audit tables failed: {error}") from error


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit trail: verify it, prove an event, publish the key."""


@audit_group.command()
@click.option("--since", type=Moment(), help="Only entries appended at or after (ISO 8601 or age, e.g. 24h).")
@click.option("--until", type=Moment(), help="Only entries appended before.")
@click.option("--stream", help="Only this stream (topic:partition).")
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Trusted public key (PEM); repeat for rotated keys. Default: the published key.",
)
@click.option(
    "--checkpoints",
    "checkpoint_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory of exported checkpoints. Default: the configured export directory.",
)
@click.option("--kafka", is_flag=True, help="Also check the checkpoints on the ai.audit topic.")
@click.option(
    "--tables/--no-tables",
    default=True,
    show_default=True,
    help="Also check the decisions, findings and alerts tables against the ledger (whole store only).",
)
@click.option(
    "--expect-streams", type=click.IntRange(min=0), default=0, help="Fail unless at least this many streams."
)
@click.option(
    "--expect-seq",
    "expect_seqs",
    multiple=True,
    metavar="STREAM=SEQ",
    help="Fail unless STREAM's ledger reaches SEQ (from an independent copy); repeatable.",
)
@click.option("--allow-empty", is_flag=True, help="An empty trail (a store that decided nothing) passes.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def verify(
    since: datetime | None,
    until: datetime | None,
    stream: str | None,
    public_keys: tuple[Path, ...],
    checkpoint_dir: Path | None,
    kafka: bool,
    tables: bool,
    expect_streams: int,
    expect_seqs: tuple[str, ...],
    allow_empty: bool,
    fmt: str,
) -> None:
    """Recompute every hash, link and signature; exit 1 on any sign of tampering.

    An empty trail fails too (unless --allow-empty): deleting the ledger, its
    checkpoints and exports together leaves nothing inconsistent to find.
    """
    expected = Expected(expect_streams, _expected_sequences(expect_seqs), allow_empty)
    settings = _settings()
    existing_store(settings)  # no store is the first thing to say, before keys or checkpoints
    keys = _keys(settings, public_keys)
    copies = _copies(settings, checkpoint_dir, kafka)
    scoped = since is not None or until is not None or stream is not None
    with _source(settings) as source, progress("verify ledger entries") as advance:
        counting = _Counted(source, advance)
        report = _guarded(lambda: Verifier(counting, keys, copies).run(stream, since, until))
        if stream is not None and not report.streams:
            raise CannotVerify(
                f"no stream {stream!r} in the ledger or its checkpoints (streams are topic:partition)"
            )
        if tables and not scoped:
            report.extra.extend(_guarded(lambda: check_tables(source)))
        if stream is None:
            report.extra.extend(expected.problems(report))
    if fmt == "json":
        click.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        _print(report, tables_checked=tables and not scoped)
    if not report.ok:
        sys.exit(1)


class _Counted:
    """A ledger source that reports each entry read, for the progress shown on a terminal."""

    def __init__(self, source: LedgerSource, advance: Advance) -> None:
        self._source = source
        self._advance = advance

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def entries(self, stream: str, first: int, last: int | None) -> Iterator[Entry]:
        return iter(counted(self._source.entries(stream, first, last), self._advance))


def _expected_sequences(values: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    parsed = []
    for value in values:
        stream, _, seq = value.rpartition("=")
        if not stream or not seq.isdigit():
            raise click.BadParameter(f"{value!r}: expected STREAM=SEQ, e.g. ai.inference:0=1200")
        parsed.append((stream, int(seq)))
    return tuple(parsed)


def _print(report: Report, tables_checked: bool) -> None:
    for stream in report.streams:
        state = "ok    " if stream.ok else "FAILED"
        line = (
            f"{state} {stream.stream}: {stream.entries:,} entries"
            + (f" (seq {stream.first_seq}..{stream.last_seq})" if stream.entries else "")
            + f", checkpoints {stream.checkpoints_matched} matched"
            f" ({stream.checkpoints_stored} stored, {stream.checkpoints_external} exported)"
        )
        if stream.uncovered:
            line += f", {stream.uncovered} newest entries not yet under a checkpoint"
        click.echo(line)
        for problem in stream.problems:
            click.echo(f"    {problem.kind}: {problem.where}: {problem.detail}")
        if stream.suppressed:
            click.echo(f"    ... and {stream.suppressed} more problems")
    for problem in report.extra:
        click.echo(f"FAILED {problem.where}: {problem.kind}: {problem.detail}")
    if not tables_checked:
        click.echo("tables not checked (use the whole store, without --since/--until/--stream)")
    count = len(report.problems)
    verdict = "verified" if report.ok else f"FAILED with {count} problem{'' if count == 1 else 's'}"
    click.echo(
        f"{verdict}: {len(report.streams)} streams, {report.entries:,} entries in {report.elapsed:.2f}s "
        f"({report.rate:,.0f} entries/s)"
    )


@audit_group.command()
@click.argument("event_id")
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Trusted public key (PEM). Default: the published key.",
)
@click.option(
    "--output", type=click.File("wb"), default="-", help="Where to write the proof (default stdout)."
)
def proof(event_id: str, public_keys: tuple[Path, ...], output: Any) -> None:
    """The proof that EVENT_ID's decision, findings and alerts are in the signed ledger."""
    settings = _settings()
    existing_store(settings)
    keys = _keys(settings, public_keys)
    copies = _copies(settings, None, kafka=False)
    with _source(settings) as source:
        try:
            document = _guarded(lambda: build_proof(source, keys, event_id, copies))
        except ProofError as error:
            raise click.ClickException(str(error)) from error
    output.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


@audit_group.command("check-proof")
@click.argument("proof_file", type=click.File("rb"))
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Trusted public key (PEM); the only thing the check relies on. Default: the published key.",
)
def check_proof_command(proof_file: Any, public_keys: tuple[Path, ...]) -> None:
    """Check a proof offline, with the public key alone."""
    keys = _keys(_settings(), public_keys)
    try:
        document = orjson.loads(proof_file.read())
    except orjson.JSONDecodeError as error:
        raise CannotVerify(f"not a proof (invalid JSON): {error}") from error
    try:
        checked = check_proof(document, keys)
    except ProofError as error:
        click.echo(f"INVALID: {error}", err=True)
        sys.exit(1)
    for entry in checked:
        click.echo(f"valid: {entry}")


@audit_group.command("public-key")
def public_key() -> None:
    """Print the public key that verifies checkpoints (PEM), to publish for auditors."""
    settings = _settings()
    path = published_key_path(settings)
    if not path.is_file():
        raise CannotVerify(
            f"no public key at {path}: the signing key {signing_key_path(settings)} is created "
            "when a worker, `vigil run` or `vigil demo` first starts"
        )
    try:
        keys = load_public_keys([path])
    except AuditKeyError as error:
        raise CannotVerify(str(error)) from error
    click.echo(path.read_text().rstrip())
    click.echo(f"key id: {next(iter(keys.by_id))}", err=True)
