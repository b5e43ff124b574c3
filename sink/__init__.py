"""The sink: typed topics into ClickHouse, exactly once, through clickhouse-connect."""
