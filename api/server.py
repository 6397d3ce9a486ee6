"""``vigil serve``: the decision API composed from settings and run under uvicorn.

Four parts, started in order and stopped in reverse: the store (and alert manager),
the journal with its recorder thread, the policy reload thread, and uvicorn with
its event loop. A recorder that fails for good (not a store outage, which it rides
out) stops the server: answers whose records cannot reach the store must not go on.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette

from alerting.gate import AlertGate
from api.app import create_app
from api.auth import Authenticator
from api.journal import Journal
from api.recorder import JournalRecorder
from api.service import DecisionService
from streams.checkpoint import BatchCheckpoint
from vigil.runtime import (
    Notifiers,
    OpenStore,
    alerting_source,
    build_identity,
    build_notifiers,
    build_policies,
    open_store,
)
from vigil.settings import Settings

log = logging.getLogger(__name__)


class ApiServer:
    """Everything ``vigil serve`` runs; ``run`` blocks until ``stop`` or a signal."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        identity = build_identity(settings)
        policies = build_policies(settings)
        self.opened: OpenStore = open_store(settings)
        self.notifiers: Notifiers = build_notifiers(settings)
        api = settings.api
        self.journal = Journal(api.journal_dir or settings.data_dir / "api-journal", fsync=api.journal_fsync)
        config = alerting_source(settings).current
        gate = AlertGate(
            min_severity=config.global_.min_severity or settings.alert_min_severity,
            resolve_timeout=config.global_.resolve_timeout,
        )
        store = self.opened.store
        self.recorder = JournalRecorder(
            self.journal, lambda stopping: BatchCheckpoint(store, self.notifiers, stopping=stopping), gate
        ).start()
        self.service = DecisionService(
            policies, identity, self.journal, max_event_bytes=settings.max_event_bytes
        )
        self._stopping = threading.Event()
        app = create_app(
            self.service, Authenticator(identity.tokens, identity.keyring), self._health, self._lifespan
        )
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=api.host,
                port=api.port,
                loop="uvloop",
                http="httptools",
                access_log=False,
                log_config=None,
                lifespan="on",
            )
        )

    def run(self) -> int:
        """Serve until stopped; then store what the grace period allows. Non-zero when recording failed."""
        if threading.current_thread() is threading.main_thread():
            # uvicorn raises the stopping signal again once it has shut down, under the
            # handlers in place before it started: these, so the journal is still drained
            # and the store closed before the process exits.
            for number in (signal.SIGINT, signal.SIGTERM):
                signal.signal(number, lambda *_: self.stop())
        try:
            self.server.run()
        finally:
            try:
                self.recorder.stop(self.settings.api.drain_grace_seconds)
            finally:
                self.journal.close()
                self.notifiers.close()
                self.opened.close()
        return 1 if self.recorder.failure is not None else 0

    def stop(self) -> None:
        self.server.should_exit = True

    @property
    def started(self) -> bool:
        return self.server.started

    def _watch(self) -> None:
        """Reload policies on their interval; stop the server if recording failed."""
        while not self._stopping.wait(min(self.settings.policies.reload_seconds, 1.0)):
            self.service.reload()
            if self.recorder.failure is not None:
                self.stop()

    def _health(self) -> dict[str, Any]:
        return {
            "status": "failing" if self.recorder.failure is not None else "ok",
            "journal_backlog_bytes": self.recorder.backlog_bytes,
            "recorded": self.recorder.stored,
        }

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        watcher = threading.Thread(target=self._watch, name="vigil-api-reload", daemon=True)
        watcher.start()
        api = self.settings.api
        log.info(
            "decision API on http://%s:%d, policies %s", api.host, api.port, self.service.engine.describe()
        )
        yield
        self._stopping.set()
        watcher.join()


def serve(settings: Settings) -> int:
    return ApiServer(settings).run()
