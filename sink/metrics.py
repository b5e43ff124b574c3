"""The sink's Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class SinkMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.rows = Counter("waflow_sink_rows_inserted", "Rows inserted", ["table"], registry=r)
        self.skipped = Counter(
            "waflow_sink_rows_already_present",
            "Rows skipped because the table had their id",
            ["table"],
            registry=r,
        )
        self.batch_rows = Histogram(
            "waflow_sink_batch_rows",
            "Rows per insert",
            buckets=(1, 10, 100, 1000, 10_000, 100_000),
            registry=r,
        )
        self.insert_seconds = Histogram("waflow_sink_insert_seconds", "Insert latency", registry=r)
        self.dead_letters = Counter(
            "waflow_sink_dead_letters", "Records the sink could not load", ["reason"], registry=r
        )
        self.lost = Counter(
            "waflow_sink_dead_letters_lost",
            "Dead letters ClickHouse refused too: logged whole, then dropped",
            registry=r,
        )
        self.write_failures = Counter(
            "waflow_sink_write_failures", "Failed batch writes", registry=r
        )
        self.engine_refused = Counter(
            "waflow_sink_engine_refused",
            "Avro batches the engine did not load, then decoded in Python",
            registry=r,
        )
        self.evicted = Counter(
            "waflow_sink_commits_refused",
            "Commits refused after the group moved on (evicted in an outage): rows re-read",
            registry=r,
        )
        self.circuit_open = Gauge(
            "waflow_sink_circuit_open", "1 while ClickHouse writes are failing", registry=r
        )
        self.lag = Gauge(
            "waflow_sink_consumer_lag", "Records behind the log end", ["topic"], registry=r
        )
