-- The four tables the sink loads. {db} is replaced by the configured database.
--
-- Engines: ReplacingMergeTree on the natural key is the last line of defence against
-- duplicates; the sink's own key check and insert_deduplication_token come first, so
-- count() = uniqExact(id) holds without FINAL. non_replicated_deduplication_window makes the
-- token work on a single (non-replicated) server and on the embedded engine.
-- Partitions are monthly: tens of millions of rows a day make ~1e9 rows a month, well within
-- one partition's comfort, and few partitions keep merges and TOO_MANY_PARTS away.
-- Codecs: ZSTD on the JSON text columns (3-10x on webhook JSON); Delta on time columns.

-- Analysts ask "per WABA, per day, per phone number / flow token": that is the order key, and
-- message_id last makes it the natural key for ReplacingMergeTree. The bloom filter serves the
-- sink's "which of these ids do you have" check and point look-ups by wamid.
CREATE TABLE IF NOT EXISTS {db}.flow_responses
(
    message_id           String,
    waba_id              LowCardinality(String),
    phone_number_id      LowCardinality(String),
    display_phone_number LowCardinality(String),
    context_message_id   Nullable(String),
    context_from         Nullable(String),
    wa_id                String,
    contact_name         Nullable(String),
    flow_name            LowCardinality(Nullable(String)),
    body                 Nullable(String),
    flow_token           Nullable(String),
    response_json        String CODEC(ZSTD(3)),
    response             Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    responded_at         DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    received_at          DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    request_id           String,
    raw_partition        UInt32,
    raw_offset           UInt64,
    entry_index          UInt32,
    change_index         UInt32,
    item_index           Int32,
    inserted_at          DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_message_id message_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_flow_token flow_token TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(responded_at)
ORDER BY (waba_id, toDate(responded_at), message_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Flow events are read per flow over time (status history, alert timelines): flow_id first.
CREATE TABLE IF NOT EXISTS {db}.flow_events
(
    event_id       String,
    waba_id        LowCardinality(String),
    flow_id        String,
    event          LowCardinality(String),
    event_time     DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    message        Nullable(String) CODEC(ZSTD(3)),
    old_status     LowCardinality(Nullable(String)),
    new_status     LowCardinality(Nullable(String)),
    alert_state    LowCardinality(Nullable(String)),
    threshold      Nullable(Float64),
    error_rate     Nullable(Float64),
    p50_latency    Nullable(Float64),
    p90_latency    Nullable(Float64),
    requests_count Nullable(Int64),
    availability   Nullable(Float64),
    warning        Nullable(String),
    errors Nested
    (
        error_type  String,
        error_rate  Nullable(Float64),
        error_count Nullable(Int64)
    ),
    change_json    String CODEC(ZSTD(3)),
    received_at    DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    request_id     String,
    raw_partition  UInt32,
    raw_offset     UInt64,
    entry_index    UInt32,
    change_index   UInt32,
    inserted_at    DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (flow_id, event_time, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Everything else (other message types, statuses, other fields): read per WABA and kind.
CREATE TABLE IF NOT EXISTS {db}.webhook_changes
(
    change_id     String,
    waba_id       LowCardinality(String),
    field         LowCardinality(String),
    kind          LowCardinality(String),
    change_json   String CODEC(ZSTD(3)),
    event_time    Nullable(DateTime64(3, 'UTC')),
    received_at   DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    request_id    String,
    raw_partition UInt32,
    raw_offset    UInt64,
    entry_index   UInt32,
    change_index  UInt32,
    item_index    Int32,
    inserted_at   DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_change_id change_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (waba_id, field, kind, change_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Failures, queryable with SQL: by stage and reason over time.
CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    dead_letter_id   String,
    stage            LowCardinality(String),
    reason           LowCardinality(String),
    error            String,
    payload          String CODEC(ZSTD(3)),
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64,
    waba_id          LowCardinality(Nullable(String)),
    request_id       Nullable(String),
    failed_at        DateTime64(3, 'UTC'),
    inserted_at      DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_dead_letter_id dead_letter_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(failed_at)
ORDER BY (stage, reason, dead_letter_id)
SETTINGS non_replicated_deduplication_window = 10000;
