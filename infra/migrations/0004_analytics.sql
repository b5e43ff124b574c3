-- Analytics that answer the business's questions (docs/analytics.md): message statuses as a
-- table, the business's own flow sends, flows resolved on responses, and views that stay right
-- on ties, redeliveries and alerts at several thresholds.
--
-- The order of flow events, total: event time, then when and where waflow received the event
-- (receive time, raw partition and offset), then its place in the delivery (entry, change).
-- Two events of one delivery share a time; their order in the delivery breaks the tie.

-- Message statuses (sent, delivered, read, failed) of every message the business sent, one row
-- per status change, filled from webhook_changes by the view below as rows arrive.
CREATE TABLE IF NOT EXISTS {db}.message_statuses
(
    change_id                String,
    waba_id                  LowCardinality(String),
    message_id               String,
    status                   LowCardinality(String),
    status_at                Nullable(DateTime64(3, 'UTC')),
    recipient_id             Nullable(String),
    recipient_user_id        Nullable(String),
    recipient_parent_user_id Nullable(String),
    error_code               Nullable(Int64),
    error_title              Nullable(String),
    pricing_billable         Nullable(Bool),
    pricing_model            LowCardinality(Nullable(String)),
    pricing_category         LowCardinality(Nullable(String)),
    pricing_type             LowCardinality(Nullable(String)),
    conversation_id          Nullable(String),
    conversation_origin      LowCardinality(Nullable(String)),
    app                      LowCardinality(Nullable(String)),
    received_at              DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    INDEX idx_message_id message_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (waba_id, message_id, status, change_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Fires on every insert into webhook_changes (its SELECT is repeated by the backfill below). The sink inserts each change id once (and a
-- retried insert is deduplicated before it reaches this view), so each status lands once.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.message_statuses_mv TO {db}.message_statuses AS
SELECT
    change_id,
    waba_id,
    JSONExtractString(change_json, 'id') AS message_id,
    JSONExtractString(change_json, 'status') AS status,
    event_time AS status_at,
    nullIf(JSONExtractString(change_json, 'recipient_id'), '') AS recipient_id,
    nullIf(JSONExtractString(change_json, 'recipient_user_id'), '') AS recipient_user_id,
    nullIf(JSONExtractString(change_json, 'recipient_parent_user_id'), '')
        AS recipient_parent_user_id,
    JSONExtract(change_json, 'errors', 1, 'code', 'Nullable(Int64)') AS error_code,
    nullIf(JSONExtractString(change_json, 'errors', 1, 'title'), '') AS error_title,
    JSONExtract(change_json, 'pricing', 'billable', 'Nullable(Bool)') AS pricing_billable,
    nullIf(JSONExtractString(change_json, 'pricing', 'pricing_model'), '') AS pricing_model,
    nullIf(JSONExtractString(change_json, 'pricing', 'category'), '') AS pricing_category,
    nullIf(JSONExtractString(change_json, 'pricing', 'type'), '') AS pricing_type,
    nullIf(JSONExtractString(change_json, 'conversation', 'id'), '') AS conversation_id,
    nullIf(JSONExtractString(change_json, 'conversation', 'origin', 'type'), '')
        AS conversation_origin,
    app,
    received_at
FROM {db}.webhook_changes
WHERE startsWith(kind, 'status.');

-- What the platform does not say: which flow a sent message carried. The business fills this
-- (an INSERT, or JSON records on the `<prefix>.flows.sends` topic that the sink loads): the
-- flow id with the sent message's wamid, its flow token, or both.
CREATE TABLE IF NOT EXISTS {db}.flow_sends
(
    send_id     String,
    flow_id     String,
    message_id  Nullable(String),
    flow_token  Nullable(String),
    waba_id     LowCardinality(Nullable(String)),
    sent_at     DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_send_id send_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(sent_at)
ORDER BY (flow_id, sent_at, send_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Flow responses with the flow each answers: the business's send of the message it replies
-- to (context_message_id), else its send of that flow token, else the flow the token names
-- (WAFLOW_FLOW_TOKEN_PATTERN, resolved by the stream stage), else NULL.
CREATE OR REPLACE VIEW {db}.flow_responses_resolved AS
SELECT
    r.* EXCEPT (flow_id),
    coalesce(nullIf(by_message.flow_id, ''), nullIf(by_token.flow_id, ''), r.flow_id) AS flow_id
FROM {db}.flow_responses AS r
LEFT JOIN
(
    SELECT assumeNotNull(message_id) AS sent_message_id, any(flow_id) AS flow_id
    FROM {db}.flow_sends WHERE message_id IS NOT NULL GROUP BY sent_message_id
) AS by_message ON r.context_message_id = by_message.sent_message_id
LEFT JOIN
(
    SELECT assumeNotNull(flow_token) AS sent_token, any(flow_id) AS flow_id
    FROM {db}.flow_sends WHERE flow_token IS NOT NULL GROUP BY sent_token
) AS by_token ON r.flow_token = by_token.sent_token;

-- Current status of each flow: the latest FLOW_STATUS_CHANGE in the total order above, its
-- status and previous status taken from that one row.
CREATE OR REPLACE VIEW {db}.flow_status_current AS
SELECT
    flow_id,
    argMax(waba_id, k) AS waba_id,
    argMax((new_status, old_status), k).1 AS status,
    argMax((new_status, old_status), k).2 AS previous_status,
    argMax(event_time, k) AS since
FROM
(
    SELECT
        *,
        (event_time, received_at, raw_partition, raw_offset, entry_index, change_index) AS k
    FROM {db}.flow_events
    WHERE event = 'FLOW_STATUS_CHANGE'
)
GROUP BY flow_id;

-- Alert episodes: from an ACTIVATED to the first DEACTIVATED of the same flow, alert and
-- threshold (NULL: still active). The platform alerts per threshold (5 % then 10 %, each
-- recovering on its own), so each threshold has episodes of its own.
CREATE OR REPLACE VIEW {db}.flow_alert_episodes AS
SELECT
    flow_id,
    waba_id,
    alert,
    threshold,
    started_at,
    ended_at,
    if(ended_at IS NULL, NULL, dateDiff('second', started_at, ended_at)) AS duration_s
FROM
(
    SELECT
        flow_id, waba_id, event AS alert, threshold, alert_state, event_time AS started_at,
        lagInFrame(toNullable(toString(alert_state)), 1) OVER whole AS previous_state,
        minIf(toNullable(event_time), alert_state = 'DEACTIVATED') OVER after AS ended_at
    FROM {db}.flow_events
    WHERE alert_state IN ('ACTIVATED', 'DEACTIVATED')
    WINDOW
        whole AS (PARTITION BY flow_id, event, threshold
                  ORDER BY event_time, received_at, raw_partition, raw_offset, entry_index,
                           change_index
                  ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING),
        after AS (PARTITION BY flow_id, event, threshold
                  ORDER BY event_time, received_at, raw_partition, raw_offset, entry_index,
                           change_index
                  ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
)
WHERE alert_state = 'ACTIVATED' AND ifNull(previous_state, '') != 'ACTIVATED';

-- Alerts active now: every episode not ended, per flow, alert and threshold.
CREATE OR REPLACE VIEW {db}.flow_alerts_active AS
SELECT flow_id, waba_id, alert, started_at AS since, threshold
FROM {db}.flow_alert_episodes
WHERE ended_at IS NULL;

-- Every alert state change, with how long that state lasted at its threshold (NULL: current).
CREATE OR REPLACE VIEW {db}.flow_alert_timeline AS
SELECT
    flow_id,
    waba_id,
    event AS alert,
    alert_state,
    event_time AS started_at,
    ended_at,
    if(ended_at IS NULL, NULL, dateDiff('second', event_time, ended_at)) AS duration_s,
    threshold,
    error_rate,
    p90_latency,
    availability
FROM
(
    SELECT
        flow_id, waba_id, event, alert_state, event_time, threshold, error_rate, p90_latency,
        availability,
        leadInFrame(toNullable(event_time)) OVER w AS ended_at
    FROM {db}.flow_events
    WHERE alert_state IS NOT NULL
    WINDOW w AS (PARTITION BY flow_id, event, threshold
                 ORDER BY event_time, received_at, raw_partition, raw_offset, entry_index,
                          change_index
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
);

-- Responses per flow per day (the flow resolved above; NULL when nothing names it), with
-- distinct users by business-scoped user id or, without one, phone number.
CREATE OR REPLACE VIEW {db}.flow_responses_daily AS
SELECT
    toDate(responded_at) AS day,
    waba_id,
    phone_number_id,
    flow_id,
    count() AS responses,
    uniqExact(coalesce(user_id, wa_id)) AS users
FROM {db}.flow_responses_resolved
GROUP BY day, waba_id, phone_number_id, flow_id;

-- Distribution of every response field's values, per day, WABA and flow.
CREATE OR REPLACE VIEW {db}.flow_response_values AS
SELECT
    toDate(responded_at) AS day,
    waba_id,
    flow_id,
    field,
    value,
    count() AS responses
FROM {db}.flow_responses_resolved
ARRAY JOIN mapKeys(response) AS field, mapValues(response) AS value
GROUP BY day, waba_id, flow_id, field, value;

-- The funnel of each flow message the business sent (flow_sends with its wamid): delivered,
-- read and responded (a response whose context is that message), per flow and day of send.
CREATE OR REPLACE VIEW {db}.flow_funnel AS
SELECT
    toDate(s.sent_at) AS day,
    s.flow_id AS flow_id,
    count() AS sent,
    countIf(st.delivered OR r.responded) AS delivered,
    countIf(st.read) AS read,
    countIf(r.responded) AS responded,
    round(responded / sent, 4) AS completion_rate
FROM
(
    SELECT assumeNotNull(message_id) AS message_id, any(flow_id) AS flow_id, min(sent_at) AS sent_at
    FROM {db}.flow_sends WHERE message_id IS NOT NULL GROUP BY message_id
) AS s
LEFT JOIN
(
    SELECT
        message_id,
        max(status IN ('delivered', 'read')) AS delivered,
        max(status = 'read') AS read
    FROM {db}.message_statuses GROUP BY message_id
) AS st ON s.message_id = st.message_id
LEFT JOIN
(
    SELECT assumeNotNull(context_message_id) AS message_id, 1 AS responded
    FROM {db}.flow_responses WHERE context_message_id IS NOT NULL GROUP BY message_id
) AS r ON s.message_id = r.message_id
GROUP BY day, flow_id;

-- Statuses already received, from before this view existed. The SELECT is the view's, word for
-- word (a materialized view cannot read another view, so it cannot be shared; a test holds the
-- two equal: tests/infra/test_cluster.py).
INSERT INTO {db}.message_statuses
SELECT
    change_id,
    waba_id,
    JSONExtractString(change_json, 'id') AS message_id,
    JSONExtractString(change_json, 'status') AS status,
    event_time AS status_at,
    nullIf(JSONExtractString(change_json, 'recipient_id'), '') AS recipient_id,
    nullIf(JSONExtractString(change_json, 'recipient_user_id'), '') AS recipient_user_id,
    nullIf(JSONExtractString(change_json, 'recipient_parent_user_id'), '')
        AS recipient_parent_user_id,
    JSONExtract(change_json, 'errors', 1, 'code', 'Nullable(Int64)') AS error_code,
    nullIf(JSONExtractString(change_json, 'errors', 1, 'title'), '') AS error_title,
    JSONExtract(change_json, 'pricing', 'billable', 'Nullable(Bool)') AS pricing_billable,
    nullIf(JSONExtractString(change_json, 'pricing', 'pricing_model'), '') AS pricing_model,
    nullIf(JSONExtractString(change_json, 'pricing', 'category'), '') AS pricing_category,
    nullIf(JSONExtractString(change_json, 'pricing', 'type'), '') AS pricing_type,
    nullIf(JSONExtractString(change_json, 'conversation', 'id'), '') AS conversation_id,
    nullIf(JSONExtractString(change_json, 'conversation', 'origin', 'type'), '')
        AS conversation_origin,
    app,
    received_at
FROM {db}.webhook_changes
WHERE startsWith(kind, 'status.');
