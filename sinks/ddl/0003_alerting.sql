-- Alerting, version 1: the alert manager's own tables. Each is a ReplacingMergeTree
-- keyed by its id with a version column, so the *_unique views show the latest
-- state of every alert instance, silence, acknowledgement and notification while
-- the base tables keep every version (the history of each alert).

CREATE TABLE IF NOT EXISTS alert_states
(
    alert_id        String,
    fingerprint     String,
    group_ids       Array(String),
    receivers       Array(LowCardinality(String)),
    state           LowCardinality(String),
    severity        LowCardinality(String),
    title           String,
    summary         String,
    labels          Map(LowCardinality(String), String),
    runbook_url     String,
    evidence_query  String,
    controls        Array(LowCardinality(String)),
    first_seen      DateTime64(3, 'UTC'),
    last_seen       DateTime64(3, 'UTC'),
    occurrences     UInt32,
    acked_by        String,
    suppressed_by   String,
    updated_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY alert_id;

CREATE TABLE IF NOT EXISTS silences
(
    silence_id  String,
    matchers    Array(String),
    starts_at   DateTime64(3, 'UTC'),
    ends_at     DateTime64(3, 'UTC'),
    created_by  String,
    reason      String,
    updated_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY silence_id;

CREATE TABLE IF NOT EXISTS alert_acks
(
    target_id  String,
    acked_by   String,
    via        LowCardinality(String),
    note       String,
    acked_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(acked_at)
ORDER BY target_id;

CREATE TABLE IF NOT EXISTS notifications
(
    notification_id  String,
    receiver         LowCardinality(String),
    group_id         String,
    kind             LowCardinality(String),
    seq              UInt64,
    status           LowCardinality(String),
    attempts         UInt32,
    last_error       String,
    headline         String,
    alert_ids        Array(String),
    created_at       DateTime64(3, 'UTC'),
    updated_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (receiver, notification_id);

CREATE VIEW IF NOT EXISTS alert_states_unique AS SELECT * FROM alert_states FINAL;
CREATE VIEW IF NOT EXISTS silences_unique AS SELECT * FROM silences FINAL;
CREATE VIEW IF NOT EXISTS alert_acks_unique AS SELECT * FROM alert_acks FINAL;
CREATE VIEW IF NOT EXISTS notifications_unique AS SELECT * FROM notifications FINAL;
