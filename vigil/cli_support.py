"""What every ``vigil`` command does first: load settings, or say clearly why not."""

from __future__ import annotations

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError

from vigil.settings import Settings


def load_settings() -> Settings:
    try:
        settings = Settings()
    except (ValidationError, SettingsError, FileNotFoundError) as error:
        raise click.ClickException(f"invalid settings:\n{error}") from error
    for name in Settings.unknown_environment():
        click.echo(f"warning: {name} is not a Vigil setting (see docs/configuration.md)", err=True)
    return settings
