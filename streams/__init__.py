"""Stream processors: normalize raw deliveries into typed records, dedup them, route them."""
