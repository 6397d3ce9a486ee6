"""``vigil worker`` with a store that can be told to fail or to hang, for tests of outages and crashes.

Run as ``python -m tests.integration.flaky_store_worker`` with the worker's ``VIGIL_*``
environment. Two files in the data directory steer it:

- while ``store-outage`` holds a number N, the next N writes of a batch fail (as a
  ClickHouse server that went away would), then the file is removed;
- while ``store-hold`` holds a number N, the Nth write from then on completes and then
  never returns: the batch is stored, its offsets are never committed, and a file
  ``store-held`` says so. A test can then kill the worker at exactly the moment a crash
  is most expensive, instead of hoping to catch it there.

Everything else is what ``vigil worker`` runs, including the query server the test
reads the store through. SIGTERM stops it as it stops the worker.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from streams.kafka_worker import run_worker
from streams.topics import ensure_broker_time, ensure_topics
from vigil.runtime import build_pipeline, open_store
from vigil.settings import load_settings

log = logging.getLogger("flaky-store")


def flaky(write: Callable[..., None], data_dir: Path) -> Callable[..., None]:
    outage, hold, held = data_dir / "store-outage", data_dir / "store-hold", data_dir / "store-held"

    def write_fail_or_hold(
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
        if hold.exists():
            left = int(hold.read_text() or 0) - 1
            hold.write_text(str(left))
            if left <= 0:
                log.warning("batch stored; holding before its offsets are committed")
                held.touch()
                threading.Event().wait()

    return write_fail_or_hold


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    ensure_topics(settings)
    ensure_broker_time(settings)
    opened = open_store(settings)
    opened.store.write = flaky(opened.store.write, settings.data_dir)  # type: ignore[method-assign]
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
