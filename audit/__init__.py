"""A tamper-evident audit trail of every decision, finding and alert.

Each record becomes an entry of a hash chain per source partition (``ledger``);
signed checkpoints of each chain (``checkpoint``, ``keys``) are stored in ClickHouse
and copied outside it (``export``, ``kafka_export``); ``verify`` recomputes
everything and names the first entry that was modified, deleted, inserted or
reordered; ``proof`` lets an auditor check one decision with the public key alone.
The drivers write through ``store.AuditedStore``; docs/audit.md has the threat model.
"""
