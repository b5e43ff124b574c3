"""The stream stage's Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class StreamMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.records_in = Counter(
            "waflow_streams_records_in", "Records consumed", ["topic"], registry=r
        )
        self.records_out = Counter(
            "waflow_streams_records_out", "Records produced", ["topic"], registry=r
        )
        self.dead_letters = Counter(
            "waflow_streams_dead_letters", "Dead letters by reason", ["reason"], registry=r
        )
        self.duplicates = Counter(
            "waflow_streams_duplicates_dropped",
            "Redelivered items dropped by the dedup table",
            registry=r,
        )
        self.latency = Histogram(
            "waflow_streams_batch_seconds",
            "Time to process one batch, until its records are handed to the producer",
            registry=r,
        )
