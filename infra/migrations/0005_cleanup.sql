-- Merged-away parts are dropped within about 30 s, under constant inserts too. ClickHouse
-- backs its cleanup off up to 300 s (max_cleanup_delay_period), and at 375 deliveries/s the
-- embedded engine (which keeps no merged-away part for its own sake: old_parts_lifetime 0)
-- held up to 970 of them at a time, about 35 MB of the sink's memory, freed every 3 to 4
-- minutes. With 30 s there were at most 140. A server still keeps each one for its
-- old_parts_lifetime (480 s by default) before this cleanup drops it.

ALTER TABLE {db}.flow_responses MODIFY SETTING max_cleanup_delay_period = 30;
ALTER TABLE {db}.flow_events MODIFY SETTING max_cleanup_delay_period = 30;
ALTER TABLE {db}.webhook_changes MODIFY SETTING max_cleanup_delay_period = 30;
ALTER TABLE {db}.dead_letters MODIFY SETTING max_cleanup_delay_period = 30;
ALTER TABLE {db}.message_statuses MODIFY SETTING max_cleanup_delay_period = 30;
ALTER TABLE {db}.flow_sends MODIFY SETTING max_cleanup_delay_period = 30;
