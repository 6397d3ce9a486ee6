-- Detector state checkpoints (detectors/snapshots.py), incremental: one row per unit of
-- a partition's state (a model, a group of principals) in the explicit per-detector
-- format of detectors/state.py, JSON, HMAC-tagged. A snapshot writes the units that
-- changed since the previous one plus the partition's own row (unit ''), which lists
-- every unit and the offsets the state includes. Restoring takes the newest
-- partition row and, per unit it lists, the newest row at or below its generation.
-- Replaces detector_snapshots (whole-partition pickles), which is no longer written.

CREATE TABLE IF NOT EXISTS detector_state
(
    scope           String,
    partition       Int32,
    unit            String,
    generation      UInt64,
    taken_at        DateTime64(3, 'UTC'),
    format_version  UInt16,
    state           String CODEC(ZSTD(3)),
    tag             String
)
ENGINE = ReplacingMergeTree(generation)
ORDER BY (scope, partition, unit);
