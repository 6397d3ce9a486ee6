-- Detector state checkpoints (detectors/snapshots.py): one pickled, HMAC-tagged
-- snapshot of a partition's detector state per row, the newest per (scope,
-- partition) wins. A worker that takes over a partition loads it and resumes the
-- baselines instead of warming up again.

CREATE TABLE IF NOT EXISTS detector_snapshots
(
    scope           String,
    partition       Int32,
    taken_at        DateTime64(3, 'UTC'),
    format_version  UInt16,
    river_version   LowCardinality(String),
    offsets         Map(String, Int64),
    keys            UInt32,
    state           String CODEC(ZSTD(3)),
    tag             String
)
ENGINE = ReplacingMergeTree(taken_at)
ORDER BY (scope, partition);
