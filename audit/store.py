"""The store both drivers write through: the batch and its ledger entries in one write.

``AuditedStore`` is a ``ClickHouseStore`` whose ``write`` adds the batch's
``audit_ledger`` and ``audit_checkpoints`` rows once its tables are stored (so an entry
in the ledger implies its row in the tables) and raises if any of it was not stored: the
driver then retries or leaves the batch unacknowledged, and the ledger re-reads the
affected streams before the retry. A timer thread signs checkpoints that are owed
by time while a stream is idle; closing signs the rest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from clickhouse_connect.driver.client import Client

from audit.checkpoint import Checkpoint
from audit.config import AuditPlaces, export_dir, published_key_path, signing_key_path
from audit.export import CheckpointExports, DirectoryExport
from audit.keys import Signer, load_or_create_signer
from audit.ledger import CHECKPOINT_TABLE, LEDGER_TABLE, Head, Ledger, Prepared
from sinks.clickhouse import ClickHouseStore

log = logging.getLogger(__name__)


class ClickHouseLedgerReader:
    """Recovery queries; each touches one stream's range of the (stream, seq) key."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def head(self, stream: str) -> Head | None:
        rows = self.client.query(
            "SELECT seq, chain_hash FROM audit_ledger WHERE stream = {stream:String} "
            "ORDER BY seq DESC, chain_hash LIMIT 1",
            parameters={"stream": stream},
        ).result_rows
        return Head(int(rows[0][0]), str(rows[0][1])) if rows else None

    def record_keys(self, stream: str, after_seq: int) -> list[tuple[str, str, str]]:
        rows = self.client.query(
            "SELECT kind, record_id, record_hash FROM audit_ledger "
            "WHERE stream = {stream:String} AND seq > {after:Int64}",
            parameters={"stream": stream, "after": after_seq},
        ).result_rows
        return [(str(kind), str(record_id), str(digest)) for kind, record_id, digest in rows]

    def latest_checkpoints(self, stream: str, limit: int) -> list[Checkpoint]:
        rows = self.client.query(
            "SELECT stream, seq, chain_hash, created_at, bundle_revision, key_id, signature "
            "FROM audit_checkpoints WHERE stream = {stream:String} "
            "ORDER BY seq DESC, created_at DESC LIMIT {limit:UInt32}",
            parameters={"stream": stream, "limit": limit},
        ).result_rows
        return [Checkpoint.from_row(tuple(row)) for row in rows]


class AuditedStore(ClickHouseStore):
    def __init__(
        self,
        client: Client,
        ledger: Ledger,
        exports: CheckpointExports,
        connect: Callable[[], Client] | None = None,
    ) -> None:
        super().__init__(client, connect)
        self.ledger = ledger
        self.exports = exports
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._timer: threading.Thread | None = None

    def start(self) -> AuditedStore:
        """Begin signing checkpoints owed by time, every quarter of the cadence."""
        interval = min(max(self.ledger.checkpoint_seconds / 4, 0.25), 10.0)
        self._timer = threading.Thread(
            target=self._tick, args=(interval,), name="vigil-audit-checkpoints", daemon=True
        )
        self._timer.start()
        return self

    def write(
        self, tables: Mapping[str, Sequence[Any]], alerts_stored: Callable[[], None] | None = None
    ) -> None:
        with self._lock:
            self._store(self.ledger.prepare(tables), alerts_stored)

    def checkpoint_due(self) -> int:
        """Sign and store the checkpoints owed by time; returns how many."""
        with self._lock:
            prepared = self.ledger.due()
            if prepared.checkpoints:
                self._store(prepared)
            return len(prepared.checkpoints)

    def close(self) -> None:
        self._stopping.set()
        if self._timer is not None:
            self._timer.join(timeout=30)
        try:
            with self._lock:
                final = self.ledger.closing()
                if final.checkpoints:
                    self._store(final)
        except Exception:
            log.exception("signing the final audit checkpoints failed; the next start signs them")
        finally:
            super().close()

    def _store(self, prepared: Prepared, alerts_stored: Callable[[], None] | None = None) -> None:
        audit = {t: prepared.tables[t] for t in (LEDGER_TABLE, CHECKPOINT_TABLE) if t in prepared.tables}
        batch = {t: rows for t, rows in prepared.tables.items() if t not in audit}
        try:
            super().write(batch, alerts_stored)
            super().write(audit)
        except BaseException:
            self.ledger.forget(prepared.streams)
            raise
        self.ledger.commit(prepared)
        if prepared.replayed:
            log.info(
                "%d records were already in the audit ledger (a replayed batch); not entered again",
                prepared.replayed,
            )
        if prepared.checkpoints or prepared.recovered:
            self.exports.publish([*prepared.recovered, *prepared.checkpoints])

    def _tick(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            try:
                self.checkpoint_due()
            except Exception:
                log.exception("signing an audit checkpoint failed; retrying in %.1fs", interval)


def load_signer(settings: AuditPlaces) -> Signer:
    """The checkpoint signing key from settings, created on first start."""
    return load_or_create_signer(signing_key_path(settings), published_key_path(settings))


def audited_store(
    client: Client, settings: AuditPlaces, signer: Signer, connect: Callable[[], Client] | None = None
) -> AuditedStore:
    """The store both drivers write through, checkpoint timer started; ``connect`` opens
    further clients on the same store, so a batch's tables are inserted side by side."""
    ledger = Ledger(
        ClickHouseLedgerReader(client),
        signer,
        settings.audit.checkpoint_entries,
        settings.audit.checkpoint_seconds,
        shared_store=not settings.embedded,
    )
    exports = CheckpointExports(DirectoryExport(export_dir(settings)))
    return AuditedStore(client, ledger, exports, connect).start()
