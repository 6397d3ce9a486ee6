"""The naive consumer ``bench/pipeline.py`` compares ``vigil run`` against.

It does only what any ingester must: parse each JSON line with orjson (so garbage is
not stored) and insert the raw line into one chDB table, in batches of the same size
``vigil run`` uses (2000), through the same clickhouse-connect ``chdb://`` client.
No schema validation, no signature check, no policy decision, no drift detection,
no derived tables. The gap between this and ``vigil run`` is therefore the price of
governance, and this run's own floor (interpreter, chDB start-up, inserts) is the
part no pipeline change can remove.

With ``--kafka`` it is the same consumer on Kafka topics, for ``bench/kafka_worker.py``:
``consume(1000)`` with confluent-kafka, the same parse and insert, and the offsets
committed after each batch is stored (what makes a worker lose nothing). It is the
least a worker that stores every event must do, so its rate bounds from above the
rate any such worker reaches, whatever it checks.

It deliberately imports nothing from Vigil, so its start-up time and peak RSS are
not inflated by the product's imports. Usage::

    python bench/baseline_ingest.py --input events.jsonl --store /tmp/dir [--batch-size 2000]
    python bench/baseline_ingest.py --kafka 127.0.0.1:19092 --topics a,b --count 100000 --store /tmp/dir

It prints one summary line shaped like ``vigil run``'s, which the benchmarks parse.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Iterable, Iterator
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


class KafkaSource:
    """Message values from Kafka; offsets are committed only once their batch is stored.

    ``ingest`` inserts a batch as soon as it has taken the batch's last value, before
    it asks for the next one: so when ``values`` resumes after a multiple of
    ``batch_size`` values, everything yielded so far is stored and committed. The rest
    is committed by ``close``, after the last insert.
    """

    def __init__(self, brokers: str, topics: list[str]) -> None:
        from confluent_kafka import Consumer

        self.consumer = Consumer(
            {
                "bootstrap.servers": brokers,
                "group.id": f"baseline-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe(topics)
        self.pending: dict[tuple[str, int], int] = {}

    def values(self, count: int, batch_size: int) -> Iterator[bytes]:
        seen = 0
        while seen < count:
            for message in self.consumer.consume(min(1000, count - seen), 1.0):
                if message.error() is not None:
                    continue
                self.pending[(message.topic(), message.partition())] = message.offset() + 1
                seen += 1
                yield message.value()
                if seen % batch_size == 0:
                    self.commit()

    def commit(self) -> None:
        from confluent_kafka import TopicPartition

        if self.pending:
            offsets = [TopicPartition(t, p, o) for (t, p), o in self.pending.items()]
            self.consumer.commit(offsets=offsets, asynchronous=False)
            self.pending.clear()

    def close(self) -> None:
        self.commit()
        self.consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, help="JSON-lines file")
    source.add_argument("--kafka", metavar="BROKERS", help="consume --topics from these brokers instead")
    parser.add_argument("--topics", default="", help="comma-separated topics (with --kafka)")
    parser.add_argument("--count", type=int, default=0, help="messages to consume (with --kafka)")
    parser.add_argument("--store", required=True, type=Path, help="directory for the chDB store")
    parser.add_argument("--batch-size", type=int, default=2000)
    args = parser.parse_args()

    args.store.mkdir(parents=True, exist_ok=True)
    client = clickhouse_connect.get_client(dsn=f"chdb://{args.store.resolve()}")
    client.command(DDL)
    try:
        # Timed like streams/local.py times ``vigil run``: the loop only, after start-up.
        started = time.perf_counter()
        if args.kafka:
            kafka = KafkaSource(args.kafka, args.topics.split(","))
            messages, stored, bad = ingest(kafka.values(args.count, args.batch_size), client, args.batch_size)
            kafka.close()
        else:
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
