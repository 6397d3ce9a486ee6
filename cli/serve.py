"""``vigil serve``: the decision API (docs/decision-api.md)."""

from __future__ import annotations

import click

from cli.support import load_settings
from identity.keyring import KeyringError
from identity.tokens import TokenConfigError
from policies.bundle import BundleError
from policies.inventory import InventoryError
from sinks.clickhouse import StoreLockedError, StoreUnavailableError
from vigil.log_format import configure_logging


@click.command()
@click.option("--host", default=None, help="Listen address (default VIGIL_API_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (default VIGIL_API_PORT, 8181).")
def serve(host: str | None, port: int | None) -> None:
    """Answer allow/deny over HTTP before the action, recording every answer.

    Callers authenticate with a JWT from the IdP (Bearer) or an API key from the key
    registry (ApiKey key_id:secret). Answers are journaled locally and stored, with
    their ledger entries and alerts, as the store allows. SIGTERM or Ctrl-C stops it.
    """
    from api.recorder_process import RecorderStartError
    from api.server import serve as run_server

    settings = load_settings()
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update={"api": settings.api.model_copy(update=overrides)})
    configure_logging(settings.log_level, settings.log_format)
    try:
        status = run_server(settings)
    except (
        KeyringError,
        BundleError,
        InventoryError,
        TokenConfigError,
        StoreUnavailableError,
        RecorderStartError,
    ) as error:
        raise click.ClickException(str(error)) from error
    except StoreLockedError as error:
        raise click.ClickException(f"{error}; stop it or point VIGIL_DATA_DIR elsewhere") from error
    if status:
        raise SystemExit(status)
