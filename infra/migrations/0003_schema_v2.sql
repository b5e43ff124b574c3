-- Schema version 2 of the typed records (schemas/history/*.v2.avsc): the app label on every
-- table; username users (business-scoped user ids, no phone number) and the message's own JSON
-- on flow responses; counts that the platform sends with fractions become Float64.
-- ADD COLUMN ... IF NOT EXISTS and MODIFY COLUMN keep every existing row.

ALTER TABLE {db}.flow_responses
    ADD COLUMN IF NOT EXISTS app            LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS user_id        Nullable(String),
    ADD COLUMN IF NOT EXISTS parent_user_id Nullable(String),
    ADD COLUMN IF NOT EXISTS username       Nullable(String),
    ADD COLUMN IF NOT EXISTS flow_id        LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS message_json   Nullable(String) CODEC(ZSTD(3)),
    MODIFY COLUMN wa_id Nullable(String);

ALTER TABLE {db}.flow_events
    ADD COLUMN IF NOT EXISTS app LowCardinality(Nullable(String)),
    MODIFY COLUMN requests_count Nullable(Float64),
    MODIFY COLUMN `errors.error_count` Array(Nullable(Float64));

ALTER TABLE {db}.webhook_changes
    ADD COLUMN IF NOT EXISTS app LowCardinality(Nullable(String));

ALTER TABLE {db}.dead_letters
    ADD COLUMN IF NOT EXISTS app LowCardinality(Nullable(String));
