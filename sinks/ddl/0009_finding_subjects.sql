-- What a finding and an alert are about, besides the model and the principal: the
-- resource the event named and the signing key it said it was signed with (the key
-- that failed, for an identity finding). Alert fingerprints cover them
-- (docs/alerting.md#labels-and-fingerprints), so two resources a principal was denied,
-- or two keys whose signatures failed, are two alerts. Rows written before this
-- migration read '' for all three.

ALTER TABLE findings
    ADD COLUMN IF NOT EXISTS resource_kind LowCardinality(String),
    ADD COLUMN IF NOT EXISTS resource_id String,
    ADD COLUMN IF NOT EXISTS key_id LowCardinality(String);

ALTER TABLE alerts
    ADD COLUMN IF NOT EXISTS resource_kind LowCardinality(String),
    ADD COLUMN IF NOT EXISTS resource_id String,
    ADD COLUMN IF NOT EXISTS key_id LowCardinality(String);

CREATE OR REPLACE VIEW findings_unique AS SELECT * FROM findings FINAL;
CREATE OR REPLACE VIEW alerts_unique AS SELECT * FROM alerts FINAL;
