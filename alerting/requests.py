"""Requests from ``vigil silence`` / ``vigil alerts ack`` to the process that owns the store.

An embedded (chDB) store admits one process; while a worker owns it, the CLI
cannot write there. It drops a small JSON file into the owner's alerting
directory instead, and the owner's alert manager applies it within seconds
(writing the silence or acknowledgement to ClickHouse, where the CLI then sees it).
Files are written whole and renamed into place, so a half-written request is
never read.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

REQUESTS_DIR = "requests"


def submit_request(state_dir: Path, request: dict[str, Any]) -> Path:
    directory = state_dir / REQUESTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_hex(8)}.json"
    temporary = directory / f".{name}.tmp"
    temporary.write_bytes(orjson.dumps(request))
    os.replace(temporary, directory / name)
    return directory / name


def take_requests(state_dir: Path) -> list[dict[str, Any]]:
    """Pending requests, oldest first; each file is removed once read."""
    directory = state_dir / REQUESTS_DIR
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            request = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as error:
            log.error("alerting request %s unreadable, removed: %s", path.name, error)
            request = None
        path.unlink(missing_ok=True)
        if isinstance(request, dict):
            found.append(request)
    return found
