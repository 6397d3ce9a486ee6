-- Vigil tables, version 1. ReplacingMergeTree keyed so that a message delivered
-- again (at-least-once delivery: same topic, partition and offset) replaces its
-- earlier copy, while the same event_id arriving at another place in the log (a
-- replay attack) is kept beside the original; the *_unique views dedupe at query
-- time for analysts who cannot wait for background merges.

CREATE TABLE IF NOT EXISTS events
(
    event_id        String,
    ts              DateTime64(3, 'UTC'),
    received_at     DateTime64(3, 'UTC'),
    type            LowCardinality(String),
    source          LowCardinality(String),
    principal_id    String,
    principal_kind  LowCardinality(String),
    roles           Array(LowCardinality(String)),
    action          LowCardinality(String),
    resource_kind   LowCardinality(String),
    resource_id     String,
    model_id        LowCardinality(String),
    verified        Bool,
    verify_reason   LowCardinality(String),
    key_id          LowCardinality(String),
    features        Map(LowCardinality(String), Float64),
    payload         String CODEC(ZSTD(3)),
    signature       String,
    topic           LowCardinality(String),
    partition       Int32,
    offset          Int64
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toDate(ts)
ORDER BY (model_id, ts, event_id, topic, partition, offset);

CREATE TABLE IF NOT EXISTS decisions
(
    event_id         String,
    ts               DateTime64(3, 'UTC'),
    principal_id     String,
    action           LowCardinality(String),
    resource_kind    LowCardinality(String),
    resource_id      String,
    model_id         LowCardinality(String),
    decision         LowCardinality(String),
    policy_ids       Array(LowCardinality(String)),
    bundle_revision  LowCardinality(String),
    verified         Bool,
    topic            LowCardinality(String),
    partition        Int32,
    offset           Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (model_id, ts, event_id, topic, partition, offset);

CREATE TABLE IF NOT EXISTS findings
(
    finding_id        String,
    ts                DateTime64(3, 'UTC'),
    event_id          String,
    model_id          LowCardinality(String),
    principal_id      String,
    stage             LowCardinality(String),
    detector_or_rule  LowCardinality(String),
    severity          LowCardinality(String),
    message           String,
    details           String
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (model_id, ts, finding_id);

CREATE TABLE IF NOT EXISTS alerts
(
    alert_id          String,
    ts                DateTime64(3, 'UTC'),
    fired_at          DateTime64(3, 'UTC'),
    fingerprint       String,
    severity          LowCardinality(String),
    title             String,
    summary           String,
    stage             LowCardinality(String),
    detector_or_rule  LowCardinality(String),
    model_id          LowCardinality(String),
    principal_id      String,
    event_id          String,
    occurrences       UInt32
)
ENGINE = ReplacingMergeTree(fired_at)
PARTITION BY toDate(ts)
ORDER BY (model_id, ts, alert_id);

CREATE TABLE IF NOT EXISTS rejected
(
    rejected_id  String,
    received_at  DateTime64(3, 'UTC'),
    topic        LowCardinality(String),
    partition    Int32,
    offset       Int64,
    key          String,
    code         LowCardinality(String),
    reason       String,
    raw_base64   String CODEC(ZSTD(3)),
    size         UInt32
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toDate(received_at)
ORDER BY (topic, rejected_id);

CREATE VIEW IF NOT EXISTS events_unique AS SELECT * FROM events FINAL;
CREATE VIEW IF NOT EXISTS decisions_unique AS SELECT * FROM decisions FINAL;
CREATE VIEW IF NOT EXISTS findings_unique AS SELECT * FROM findings FINAL;
CREATE VIEW IF NOT EXISTS alerts_unique AS SELECT * FROM alerts FINAL;
CREATE VIEW IF NOT EXISTS rejected_unique AS SELECT * FROM rejected FINAL;
