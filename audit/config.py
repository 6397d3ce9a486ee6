"""Where the audit trail keeps its key and its exported checkpoints, from settings."""

from __future__ import annotations

from pathlib import Path

from audit.keys import public_key_path
from vigil.settings import Settings


def signing_key_path(settings: Settings) -> Path:
    return settings.audit.signing_key_file or settings.data_dir / "audit-signing.key"


def published_key_path(settings: Settings) -> Path:
    return public_key_path(signing_key_path(settings))


def export_dir(settings: Settings) -> Path:
    return settings.audit.export_dir or settings.data_dir / "audit-checkpoints"
