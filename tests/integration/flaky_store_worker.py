"""``vigil worker`` with a store that can be told to fail, for tests of store outages.

Run as ``python -m tests.integration.flaky_store_worker`` with the worker's ``VIGIL_*``
environment. While a file ``store-outage`` in the data directory holds a number N, the
next N writes of a batch fail (as a ClickHouse server that went away would), then the
file is removed. Everything else is what ``vigil worker`` runs, including the query
server the test reads the store through. SIGTERM stops it as it stops the worker.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streams.kafka_worker import run_worker
from streams.topics import ensure_broker_time, ensure_topics
from vigil.runtime import build_pipeline, open_store
from vigil.settings import load_settings

log = logging.getLogger("flaky-store")


def failing(write: Callable[..., None], outage: Any) -> Callable[..., None]:
    def write_or_fail(
        tables: Mapping[str, Sequence[Any]], alerts_stored: Callable[[], None] | None = None
    ) -> None:
        if outage.exists():
            left = int(outage.read_text() or 0)
            if left > 0:
                outage.write_text(str(left - 1))
                log.warning("injected store failure, %d left", left - 1)
                raise ConnectionError("store unavailable (injected)")
            outage.unlink()
        write(tables, alerts_stored)

    return write_or_fail


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    ensure_topics(settings)
    ensure_broker_time(settings)
    opened = open_store(settings)
    opened.store.write = failing(opened.store.write, settings.data_dir / "store-outage")  # type: ignore[method-assign]
    stopping = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stopping.set())
    try:
        run_worker(settings, build_pipeline(settings), opened.store, stopping)
    finally:
        opened.close()
    log.info("stopped cleanly")


if __name__ == "__main__":
    main()
