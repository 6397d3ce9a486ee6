-- The audit ledger (audit/): every decision, finding and alert as a hash-chained
-- entry, and the signed checkpoints of each stream. Plain MergeTree, not Replacing:
-- nothing is ever merged away, so a duplicated or forged row stays visible to
-- `vigil audit verify`. Replays are deduplicated before they are written.

CREATE TABLE IF NOT EXISTS audit_ledger
(
    stream         LowCardinality(String),
    seq            UInt64,
    kind           LowCardinality(String),
    record_id      String,
    event_id       String,
    source_offset  Int64,
    record         String CODEC(ZSTD(3)),
    record_hash    String,
    prev_hash      String,
    chain_hash     String,
    appended_at    DateTime64(3, 'UTC'),
    INDEX event_id_bloom event_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(appended_at)
ORDER BY (stream, seq);

CREATE TABLE IF NOT EXISTS audit_checkpoints
(
    stream           LowCardinality(String),
    seq              UInt64,
    chain_hash       String,
    created_at       DateTime64(3, 'UTC'),
    bundle_revision  LowCardinality(String),
    key_id           LowCardinality(String),
    signature        String
)
ENGINE = MergeTree
ORDER BY (stream, seq);
