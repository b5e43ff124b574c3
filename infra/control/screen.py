"""What `waflow status` shows, computed from two snapshots: pure, so a test can render it.

Rates and latency quantiles come from the difference of two scrapes, so they describe the last
refresh interval, not the process's whole life.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

Key = tuple[str, tuple[tuple[str, str], ...]]
Samples = dict[Key, float]
STAGES = ("ingest", "streams", "sink")
# The platform's delivery targets: median answer under 250 ms, under 1 % of answers over 1 s.
MEDIAN_TARGET_S, SLOW_S, SLOW_SHARE = 0.25, 1.0, 0.01
HANDSHAKES = ("handshake_ok", "bad_handshake")  # GETs of the subscription check, not webhooks


def parse(text: str) -> Samples:
    """Prometheus text format to {(sample name, sorted labels): value}."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            out[key] = out.get(key, 0.0) + s.value
    return out


def merge(many: list[Samples]) -> Samples:
    """Several replicas of one stage (ingress behind a load balancer) add up."""
    out: Samples = {}
    for samples in many:
        for key, value in samples.items():
            out[key] = out.get(key, 0.0) + value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= set(lbl))


def buckets(samples: Samples, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram, in order."""
    found = [(float(dict(lbl)["le"]), v) for (n, lbl), v in samples.items() if n == name]
    return sorted(found)


def quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile by linear interpolation inside the bucket, as Prometheus does."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            width = count - lower_count
            share = (rank - lower_count) / width if width else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass(frozen=True)
class Snapshot:
    at: float
    stages: dict[str, Samples | None]  # None: no endpoint of that stage answered
    lag: dict[tuple[str, str], int] | None = None
    rows: dict[str, int] | None = None
    dead: list[tuple[str, str, int]] | None = None
    problems: tuple[str, ...] = field(default=())


def view(prev: Snapshot, cur: Snapshot) -> RenderableType:
    dt = max(cur.at - prev.at, 1e-9)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(cur.at))
    parts: list[RenderableType] = [Text(f"waflow status  {stamp}  (rates over {dt:.1f} s)")]
    parts.append(_stages(prev, cur, dt))
    parts.append(_lag(cur))
    parts.append(_clickhouse(cur))
    parts.extend(Text(p, style="yellow") for p in cur.problems)
    return Group(*parts)


def _stages(prev: Snapshot, cur: Snapshot, dt: float) -> Table:
    table = Table(title="stages", title_justify="left")
    for name in ("stage", "state", "in/s", "out/s", "errors/s", "detail"):
        table.add_column(name, justify="right" if name.endswith("/s") else "left")
    for stage in STAGES:
        now = cur.stages.get(stage)
        if now is None:
            table.add_row(stage, Text("down", style="bold red"), "-", "-", "-", "no metrics")
            continue
        w = Window(now, prev.stages.get(stage) or {}, dt)
        row = ROWS[stage](w)
        table.add_row(stage, Text("up", style="green"), *(f"{v:,.1f}" for v in row[:3]), row[3])
    return table


@dataclass(frozen=True)
class Window:
    """One stage's samples at both ends of the refresh interval."""

    now: Samples
    before: Samples
    dt: float

    def rate(self, name: str, **labels: str) -> float:
        grown = total(self.now, name, **labels) - total(self.before, name, **labels)
        return max(0.0, grown) / self.dt  # a restarted stage's counters start again at 0


Row = tuple[float, float, float, Text]  # in/s, out/s, errors/s, detail


def _ingest(w: Window) -> Row:
    req = "waflow_ingest_requests_total"
    ok = w.rate(req, outcome="accepted")
    posts = w.rate(req) - sum(w.rate(req, outcome=o) for o in HANDSHAKES)
    errors = max(0.0, posts - ok)
    return ok + errors, ok, errors, _latency(w.before, w.now)


def _streams(w: Window) -> Row:
    dups = total(w.now, "waflow_streams_duplicates_dropped_total")
    return (
        w.rate("waflow_streams_records_in_total"),
        w.rate("waflow_streams_records_out_total"),
        w.rate("waflow_streams_dead_letters_total"),
        Text(f"duplicates dropped {dups:,.0f}"),
    )


def _sink(w: Window) -> Row:
    inserted = w.rate("waflow_sink_rows_inserted_total")
    present = w.rate("waflow_sink_rows_already_present_total")
    circuit_open = total(w.now, "waflow_sink_circuit_open") > 0
    detail = (
        Text("circuit OPEN: ClickHouse refusing writes", style="bold red")
        if circuit_open
        else Text(f"already present {present:,.0f}/s")
    )
    return inserted + present, inserted, w.rate("waflow_sink_write_failures_total"), detail


ROWS: dict[str, Callable[[Window], Row]] = {"ingest": _ingest, "streams": _streams, "sink": _sink}


def _latency(before: Samples, now: Samples) -> Text:
    name = "waflow_ingest_request_seconds_bucket"
    b, n = dict(buckets(before, name)), buckets(now, name)
    window = [(bound, count - b.get(bound, 0.0)) for bound, count in n]
    if not window or window[-1][1] <= 0:
        window = n  # nothing new in this interval: show the process's whole life
    p50, p99 = quantile(window, 0.5), quantile(window, 0.99)
    if p50 is None or p99 is None:
        return Text("no requests yet")
    slow = 1 - dict(window).get(SLOW_S, 0.0) / window[-1][1]
    ok = p50 < MEDIAN_TARGET_S and slow < SLOW_SHARE
    return Text(
        f"p50 {p50 * 1000:.1f} ms  p99 {p99 * 1000:.1f} ms  over 1 s {slow:.2%}"
        f"  (target p50 < 250 ms, < 1% over 1 s)",
        style="green" if ok else "bold red",
    )


def _lag(cur: Snapshot) -> Table:
    table = Table(title="consumer lag (records behind the log end)", title_justify="left")
    table.add_column("group")
    table.add_column("topic")
    table.add_column("lag", justify="right")
    for (group, topic), behind in sorted((cur.lag or {}).items()):
        table.add_row(group, topic, f"{behind:,}")
    if cur.lag is None:
        table.add_row("-", "broker unreachable", "-")
    return table


def _clickhouse(cur: Snapshot) -> Table:
    table = Table(title="ClickHouse", title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    if cur.rows is None:
        table.add_row("unreachable", "-")
    for name, count in (cur.rows or {}).items():
        table.add_row(name, f"{count:,}")
    for stage, reason, count in cur.dead or []:
        table.add_row(f"  dead letters: {stage} / {reason}", f"{count:,}")
    return table
