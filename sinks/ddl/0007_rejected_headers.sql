-- The Kafka headers of each rejected message, as it arrived: a binary-mode CloudEvent
-- carries its id, source, time and type in `ce_*` headers, so the value alone cannot be
-- replayed or understood. Values are kept as text when they are UTF-8, else as
-- "base64:" and their bytes in base64; bearer tokens are replaced by their digest, as in
-- the message itself.

ALTER TABLE rejected
    ADD COLUMN IF NOT EXISTS headers Map(String, String);

CREATE OR REPLACE VIEW rejected_unique AS SELECT * FROM rejected FINAL;
