"""The ingress's Prometheus metrics, on a registry of its own (one per app, so tests stay apart)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "waflow_ingest_requests", "Webhook requests by outcome", ["outcome"], registry=r
        )
        self.latency = Histogram(
            "waflow_ingest_request_seconds",
            "Time to answer a POST",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.produce_latency = Histogram(
            "waflow_ingest_produce_seconds",
            "Time until the broker acknowledged the write",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.bytes_accepted = Counter(
            "waflow_ingest_accepted_bytes", "Body bytes written", registry=r
        )
        # Pre-create the outcome series so dashboards see zeros, not gaps.
        for outcome in (
            "accepted",
            "bad_signature",
            "too_large",
            "slow_body",
            "busy",
            "bad_method",
            "broker_unavailable",
            "bad_handshake",
            "handshake_ok",
        ):
            self.requests.labels(outcome)
