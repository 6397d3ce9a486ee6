-- W3C trace context of each event (docs/events.md, "Trace context"): the trace and span
-- ids from the signed `traceparent` field, a CloudEvent's `traceparent` or the Kafka
-- `traceparent` header, "" without one. A bloom filter skips the granules that cannot
-- hold a trace, so "every event of this trace" reads little of a large table.

ALTER TABLE events
    ADD COLUMN IF NOT EXISTS trace_id String,
    ADD COLUMN IF NOT EXISTS span_id String;

ALTER TABLE events
    ADD INDEX IF NOT EXISTS events_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4;

CREATE OR REPLACE VIEW events_unique AS SELECT * FROM events FINAL;
