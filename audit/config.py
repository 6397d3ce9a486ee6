"""Where the audit trail keeps its key and its exported checkpoints, from settings.

The signing key, the exported checkpoints and the store are kept apart by default
(docs/audit.md#threat-model): the key in ``<keys_dir>`` (default ``<data_dir>-keys``),
the copies in ``<data_dir>-checkpoints``, the store in ``<data_dir>``. Before that, key
and copies lived inside the data directory; a key or copies found there are used where
they are, with a warning to move them, never replaced by a new key or split between two
places: a new key would sign a chain its predecessor's checkpoints contradict, and
split copies would each look incomplete.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from audit.keys import AuditKeyError, public_key_path

log = logging.getLogger(__name__)

KEY_NAME = "audit-signing.key"
FORMER_EXPORTS = "audit-checkpoints"
"""Name of the export directory inside the data directory, where it was kept before."""


class AuditSettings(BaseModel):
    """The tamper-evident audit ledger: who signs its checkpoints, how often, where copies go."""

    signing_key_file: Path | None = None
    """Ed25519 private key (PEM); default ``<keys_dir>/audit-signing.key``, created with mode
    0600 on first start, its public key written beside it as ``audit-signing.pub``."""
    export_dir: Path | None = None
    """Where signed checkpoints are copied as JSON files; default ``<data_dir>-checkpoints``
    beside the data directory, so that whoever holds the store does not hold the copies."""
    checkpoint_entries: int = Field(default=1000, ge=1)
    """Sign a checkpoint of a stream once this many entries are not yet covered..."""
    checkpoint_seconds: float = Field(default=60.0, gt=0)
    """...or once its oldest uncovered entry is this many seconds old."""


class AuditPlaces(Protocol):
    """What the audit trail takes from the process settings (``vigil.settings.Settings`` fits):
    its own section and where the data, the keys and the exported copies live by default."""

    @property
    def audit(self) -> AuditSettings: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def keys_directory(self) -> Path: ...

    @property
    def checkpoints_directory(self) -> Path: ...

    @property
    def embedded(self) -> bool: ...


def signing_key_path(settings: AuditPlaces) -> Path:
    if settings.audit.signing_key_file is not None:
        return settings.audit.signing_key_file
    default = settings.keys_directory / KEY_NAME
    former = settings.data_dir / KEY_NAME
    if not former.exists():
        return default
    if default.exists():
        if default.read_bytes() != former.read_bytes():
            raise AuditKeyError(
                f"two audit signing keys, {default} and {former} (its former place): keep the one "
                "whose public key the auditors hold, remove the other"
            )
        log.warning("%s is a leftover copy of %s; remove it", former, default)
        return default
    log.warning(
        "audit signing key found at its former place %s: using it; move it and %s to %s "
        "(or set VIGIL_AUDIT_SIGNING_KEY_FILE) so the store and the key are apart",
        former,
        public_key_path(former).name,
        settings.keys_directory,
    )
    return former


def published_key_path(settings: AuditPlaces) -> Path:
    """Beside the private key; in ``<keys_dir>`` when the key is a read-only mounted secret."""
    key = signing_key_path(settings)
    beside = public_key_path(key)
    read_only = settings.audit.signing_key_file is not None and not os.access(key.parent, os.W_OK)
    if read_only and not beside.exists():
        return settings.keys_directory / beside.name
    return beside


def export_dir(settings: AuditPlaces) -> Path:
    if settings.audit.export_dir is not None:
        return settings.audit.export_dir
    default = settings.checkpoints_directory
    former = settings.data_dir / FORMER_EXPORTS
    if not _holds_files(former):
        return default
    if _holds_files(default):
        raise AuditKeyError(
            f"exported audit checkpoints in two places, {default} and {former} (the former "
            f"default): move the files of {former} into {default}"
        )
    log.warning(
        "exported audit checkpoints found at their former place %s: exporting there; move them to %s "
        "(or set VIGIL_AUDIT_EXPORT_DIR) so the store and the copies are apart",
        former,
        default,
    )
    return former


def _holds_files(directory: Path) -> bool:
    return directory.is_dir() and any(path.is_file() for path in directory.rglob("*"))
