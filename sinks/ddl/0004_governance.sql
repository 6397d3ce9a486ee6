-- Governance evidence on every decision: the request exactly as the policies saw it
-- (so a candidate bundle can be replayed over history), the controls evidenced, and
-- how the bearer token (if any) fared.

ALTER TABLE decisions
    ADD COLUMN IF NOT EXISTS controls Array(LowCardinality(String)),
    ADD COLUMN IF NOT EXISTS principal_type LowCardinality(String),
    ADD COLUMN IF NOT EXISTS roles Array(LowCardinality(String)),
    ADD COLUMN IF NOT EXISTS resource_type LowCardinality(String),
    ADD COLUMN IF NOT EXISTS facts String,
    ADD COLUMN IF NOT EXISTS errors Array(String);

ALTER TABLE events
    ADD COLUMN IF NOT EXISTS token_status LowCardinality(String);

CREATE OR REPLACE VIEW events_unique AS SELECT * FROM events FINAL;
CREATE OR REPLACE VIEW decisions_unique AS SELECT * FROM decisions FINAL;
