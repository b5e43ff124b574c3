"""The status screen's arithmetic: rates from two scrapes, quantiles from histogram buckets."""

from __future__ import annotations

from rich.console import Console

from infra.control.screen import Snapshot, parse, quantile, view

INGEST = """# TYPE waflow_ingest_requests counter
waflow_ingest_requests_total{{outcome="accepted"}} {ok}
waflow_ingest_requests_total{{outcome="bad_signature"}} {bad}
waflow_ingest_requests_total{{outcome="handshake_ok"}} 5
# TYPE waflow_ingest_request_seconds histogram
waflow_ingest_request_seconds_bucket{{le="0.01"}} {fast}
waflow_ingest_request_seconds_bucket{{le="0.25"}} {ok_or_bad}
waflow_ingest_request_seconds_bucket{{le="1.0"}} {ok_or_bad}
waflow_ingest_request_seconds_bucket{{le="+Inf"}} {ok_or_bad}
waflow_ingest_request_seconds_count {ok_or_bad}
waflow_ingest_request_seconds_sum 1
"""


def ingest(ok: int, bad: int, fast: int) -> str:
    return INGEST.format(ok=ok, bad=bad, fast=fast, ok_or_bad=ok + bad)


def render(prev: Snapshot, cur: Snapshot) -> str:
    console = Console(record=True, width=160)
    console.print(view(prev, cur))
    return console.export_text()


def test_quantiles_interpolate_inside_buckets_like_prometheus() -> None:
    cumulative = [(0.01, 50.0), (0.1, 100.0), (float("inf"), 100.0)]
    assert quantile(cumulative, 0.5) == 0.01
    assert abs((quantile(cumulative, 0.75) or 0) - 0.055) < 1e-9
    assert quantile([(float("inf"), 0.0)], 0.5) is None


def test_rates_and_latency_describe_the_interval_not_the_process_life() -> None:
    prev = Snapshot(100.0, {"ingest": parse(ingest(1000, 0, 0)), "streams": None, "sink": None})
    cur = Snapshot(102.0, {"ingest": parse(ingest(1200, 10, 210)), "streams": None, "sink": None})
    out = render(prev, cur)
    assert "105.0" in out  # (200 accepted + 10 refused) / 2 s; handshakes are not webhooks
    assert "100.0" in out and "5.0" in out
    assert "p50 5.0 ms" in out  # the first 1000 slow answers are outside the window
    assert "streams" in out and "down" in out
    assert "broker unreachable" in out and "unreachable" in out
