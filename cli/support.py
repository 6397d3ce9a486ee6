"""What every ``vigil`` command shares: settings, the store it reads, and errors as one line.

A mistake a user can make (a bad setting, key file, policy bundle, detector file; a
store that is not where they think) ends the command with one line that says what is
wrong and what to do, exit status 2. A failure of something the command depends on
(a store or broker that does not answer) is one line too, exit status 1. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import shutil
from collections.abc import Collection, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from alerting.config import ConfigError as AlertingConfigError
from audit.keys import AuditKeyError
from detectors.config import DetectorConfigError
from identity.keyring import KeyringError
from identity.tokens import TokenConfigError
from policies.bundle import BundleError
from policies.inventory import InventoryError
from schemas.durations import parse_duration
from sinks.clickhouse import StoreLockedError, StoreUnavailableError
from sinks.query_server import QueryError, QueryServerError
from vigil.kafka_clients import KafkaAccessError
from vigil.metrics import MetricsPortError
from vigil.settings import InvalidSettingsError, Settings
from vigil.settings import load_settings as _load


class DurationParam(click.ParamType):
    """An option in the one duration grammar; a wrong value is a usage error that names the option."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


DURATION = DurationParam()


class UsageProblem(click.ClickException):
    """A mistake in how the command was called or configured: exit status 2."""

    exit_code = 2


CONFIGURATION_HINTS: dict[type[Exception], str] = {
    KeyringError: "fix the key registry or point VIGIL_KEYS_FILE at another (docs/events.md#key-registry)",
    BundleError: "fix the policy bundle or point VIGIL_POLICIES_DIR at another",
    InventoryError: "fix the inventory or point VIGIL_POLICIES_INVENTORY at another",
    TokenConfigError: "check VIGIL_IDENTITY_JWKS and the VIGIL_IDENTITY_JWT_* settings",
    DetectorConfigError: "fix the file or unset VIGIL_DETECTORS_CONFIG (docs/detectors.md)",
    AlertingConfigError: "fix the routing file or unset VIGIL_ALERTING_CONFIG (docs/alerting.md)",
    AuditKeyError: "check VIGIL_AUDIT_SIGNING_KEY_FILE (docs/audit.md)",
}
"""Errors in what the user configured, with what to do about them (exit status 2)."""
FAILURE_HINTS: dict[type[Exception], str] = {
    StoreLockedError: "stop that process, or point VIGIL_DATA_DIR elsewhere",
    StoreUnavailableError: "check that the server runs and VIGIL_CLICKHOUSE_URL",
    QueryError: "",
    KafkaAccessError: "",
    MetricsPortError: "set VIGIL_METRICS_PORT to a free port, or 0 for any",
    QueryServerError: "set VIGIL_QUERY_PORT to a free port, or 0 for any",
}
"""Failures of what the command depends on (exit status 1)."""


def as_user_error(error: Exception) -> click.ClickException | None:
    """The one-line error a known problem becomes, or None for anything else (a bug)."""
    if isinstance(error, InvalidSettingsError):
        return UsageProblem(str(error))
    for kinds, exception in ((CONFIGURATION_HINTS, UsageProblem), (FAILURE_HINTS, click.ClickException)):
        for kind, hint in kinds.items():
            if isinstance(error, kind):
                return exception(_one_line(str(error)) + (f"; {hint}" if hint else ""))
    return None


def _one_line(message: str) -> str:
    """A message that lists its problems on several lines, as one: ``first; second``."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def load_settings() -> Settings:
    """Settings for a command; problems and mistyped ``VIGIL_*`` names are said plainly."""
    try:
        settings = _load()
    except InvalidSettingsError as error:
        raise UsageProblem(str(error)) from None
    for name in Settings.unknown_environment():
        click.echo(f"warning: {name} is not a Vigil setting (see docs/configuration.md)", err=True)
    return settings


def existing_store(settings: Settings) -> str:
    """The store URL, once it is clear an embedded store is there: reading never creates one.

    Opening a chDB directory creates it; a query from the wrong working directory would
    then report missing tables in a new, empty store instead of the real problem.
    """
    url = settings.store_url
    if url.startswith("chdb://") and url != "chdb://memory":
        directory = Path(url.removeprefix("chdb://"))
        if not directory.is_dir():
            relative = "" if settings.data_dir.is_absolute() else f", relative to {Path.cwd()}"
            raise UsageProblem(
                f"no Vigil store in {directory} (VIGIL_DATA_DIR is {settings.data_dir}{relative}); "
                "run from the directory that holds it, or set VIGIL_DATA_DIR or VIGIL_CLICKHOUSE_URL"
            )
    return url


TABLE_WIDTH = 120
"""Tables fit this many columns (or the terminal, when narrower): long cells wrap, ids do not."""
OUTPUT = click.option(
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="json: every field of every row, for scripts.",
)


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]], wrap: Collection[str] = ()) -> None:
    """Rows under ``header``; the columns named in ``wrap`` take more lines to keep the width."""
    width = min(shutil.get_terminal_size((TABLE_WIDTH, 24)).columns, TABLE_WIDTH)
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", collapse_padding=True)
    for name in header:
        table.add_column(name, no_wrap=name not in wrap, overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    Console(width=width, highlight=False).print(table)


def print_json(records: Sequence[dict[str, Any]]) -> None:
    """One JSON array of objects; times as ISO 8601."""
    click.echo(orjson.dumps(list(records), default=str, option=orjson.OPT_INDENT_2).decode())
