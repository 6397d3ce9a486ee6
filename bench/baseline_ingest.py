"""The naive consumer ``bench/pipeline.py`` compares ``vigil run`` against.

It does only what any ingester must: parse each JSON line with orjson (so garbage is
not stored) and insert the raw line into one chDB table, in batches of the same size
``vigil run`` uses (2000), through the same clickhouse-connect ``chdb://`` client.
No schema validation, no signature check, no policy decision, no drift detection,
no derived tables. The gap between this and ``vigil run`` is therefore the price of
governance, and this run's own floor (interpreter, chDB start-up, inserts) is the
part no pipeline change can remove.

It deliberately imports nothing from Vigil, so its start-up time and peak RSS are
not inflated by the product's imports. Usage::

    python bench/baseline_ingest.py --input events.jsonl --store /tmp/dir [--batch-size 2000]

It prints one summary line shaped like ``vigil run``'s, which the benchmark parses.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from pathlib import Path

import clickhouse_connect
import orjson
from clickhouse_connect.driver.client import Client

TABLE = "raw_events"
# Same codec as the product's ``events.payload`` column, so stored bytes compare.
DDL = f"CREATE TABLE IF NOT EXISTS {TABLE} (line String CODEC(ZSTD(3))) ENGINE = MergeTree ORDER BY tuple()"


def ingest(lines: Iterable[bytes], client: Client, batch_size: int) -> tuple[int, int, int]:
    """Parse and store; return (messages, stored, unparseable). Blank lines are framing."""
    messages = stored = bad = 0
    batch: list[list[str]] = []
    for line in lines:
        value = line.rstrip(b"\r\n")
        if not value.strip():
            continue
        messages += 1
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            bad += 1
        else:
            batch.append([value.decode("utf-8", "replace")])
        if messages % batch_size == 0 and batch:
            client.insert(TABLE, batch, column_names=["line"])
            stored += len(batch)
            batch = []
    if batch:
        client.insert(TABLE, batch, column_names=["line"])
        stored += len(batch)
    return messages, stored, bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, type=Path, help="JSON-lines file")
    parser.add_argument("--store", required=True, type=Path, help="directory for the chDB store")
    parser.add_argument("--batch-size", type=int, default=2000)
    args = parser.parse_args()

    args.store.mkdir(parents=True, exist_ok=True)
    client = clickhouse_connect.get_client(dsn=f"chdb://{args.store.resolve()}")
    client.command(DDL)
    try:
        # Timed like streams/local.py times ``vigil run``: the loop only, after start-up.
        started = time.perf_counter()
        with args.input.open("rb") as handle:
            messages, stored, bad = ingest(handle, client, args.batch_size)
        elapsed = time.perf_counter() - started
        count = client.query(f"SELECT count() FROM {TABLE}").result_rows[0][0]
    finally:
        client.close()
    rate = messages / elapsed if elapsed else 0.0
    print(
        f"{messages} messages in {elapsed:.2f}s ({rate:,.0f}/s): "
        f"{stored} stored, {bad} unparseable, {count} rows in {TABLE}."
    )


if __name__ == "__main__":
    main()
