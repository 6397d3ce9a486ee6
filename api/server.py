"""``vigil serve``: the decision API composed from settings and run under uvicorn.

Four parts, started in order and stopped in reverse: the journal, the recorder
process (``api.recorder_process``: it owns the store and the alert manager), the
watch thread (policy reloads, recorder restarts), and uvicorn with its event loop.
This process never opens the store: storing holds the interpreter lock for
milliseconds at a time, and requests must not wait behind it. A recorder that dies
is restarted; one that keeps dying (not a store outage, which it rides out) stops
the server with a non-zero exit: answers whose records cannot reach the store must
not go on.
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

from api.app import create_app
from api.auth import Authenticator
from api.journal import Journal
from api.recorder_process import RecorderProcess, journal_dir
from api.service import DecisionService
from vigil.runtime import build_identity, build_policies, settle_memory
from vigil.settings import Settings

log = logging.getLogger(__name__)


class ApiServer:
    """Everything ``vigil serve`` runs; ``run`` blocks until ``stop`` or a signal."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        identity = build_identity(settings)
        policies = build_policies(settings)
        api = settings.api
        self.journal = Journal(journal_dir(settings), fsync=api.journal_fsync)
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
        try:
            self.recorder = RecorderProcess(settings).start()  # last: nothing after it can fail
        except BaseException:
            self.journal.close()
            raise

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
        return 1 if self.recorder.failure is not None else 0

    def stop(self) -> None:
        self.server.should_exit = True

    @property
    def started(self) -> bool:
        return self.server.started

    def _watch(self) -> None:
        """Reload policies on their interval; restart a dead recorder; stop the server if recording failed."""
        while not self._stopping.wait(min(self.settings.policies.reload_seconds, 1.0)):
            self.service.reload()
            self.recorder.check()
            if self.recorder.failure is not None:
                self.stop()

    def _health(self) -> dict[str, Any]:
        return {
            "status": "failing" if self.recorder.failure is not None else "ok",
            "recorder": self.recorder.state,
            "journal_backlog_bytes": self.journal.backlog_bytes(self.journal.position()),
            "recorded": self.recorder.stored,
        }

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        watcher = threading.Thread(target=self._watch, name="vigil-api-reload", daemon=True)
        watcher.start()
        # The inventory and the engine are ~100k long-lived objects: a full collection
        # re-scanning them stalls every request waiting on the loop for tens of ms.
        settle_memory()
        api = self.settings.api
        log.info(
            "decision API on http://%s:%d, policies %s", api.host, api.port, self.service.engine.describe()
        )
        yield
        self._stopping.set()
        watcher.join()


def serve(settings: Settings) -> int:
    return ApiServer(settings).run()
