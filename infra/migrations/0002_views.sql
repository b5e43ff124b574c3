-- The questions analysts ask first. Plain views: they read the tables at query time.

-- Current status of each flow: the latest FLOW_STATUS_CHANGE.
CREATE VIEW IF NOT EXISTS {db}.flow_status_current AS
SELECT
    flow_id,
    any(waba_id) AS waba_id,
    argMax(new_status, (event_time, raw_partition, raw_offset)) AS status,
    argMax(old_status, (event_time, raw_partition, raw_offset)) AS previous_status,
    max(event_time) AS since
FROM {db}.flow_events
WHERE event = 'FLOW_STATUS_CHANGE'
GROUP BY flow_id;

-- Every alert state change with how long that state lasted (NULL: still current).
CREATE VIEW IF NOT EXISTS {db}.flow_alert_timeline AS
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
    WINDOW w AS (PARTITION BY flow_id, event ORDER BY event_time
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
);

-- Alerts active now: the latest state per flow and kind is ACTIVATED.
CREATE VIEW IF NOT EXISTS {db}.flow_alerts_active AS
SELECT
    flow_id,
    any(waba_id) AS waba_id,
    event AS alert,
    argMax(event_time, event_time) AS since,
    argMax(threshold, event_time) AS threshold
FROM {db}.flow_events
WHERE alert_state IS NOT NULL
GROUP BY flow_id, event
HAVING argMax(alert_state, event_time) = 'ACTIVATED';

-- Responses per day per WABA, phone number and flow token.
CREATE VIEW IF NOT EXISTS {db}.flow_responses_daily AS
SELECT
    toDate(responded_at) AS day,
    waba_id,
    phone_number_id,
    flow_token,
    count() AS responses,
    uniqExact(wa_id) AS users
FROM {db}.flow_responses
GROUP BY day, waba_id, phone_number_id, flow_token;

-- Distribution of every response field's values (filter by field in the query).
CREATE VIEW IF NOT EXISTS {db}.flow_response_values AS
SELECT
    field,
    value,
    count() AS responses
FROM {db}.flow_responses
ARRAY JOIN mapKeys(response) AS field, mapValues(response) AS value
GROUP BY field, value;
