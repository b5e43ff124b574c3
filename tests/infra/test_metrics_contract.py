"""One naming scheme across stages (`waflow_<stage>_...`), and a Grafana dashboard that only
asks for metrics the stages export."""

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from ingest.metrics import IngestMetrics
from sink.metrics import SinkMetrics
from streams.metrics import StreamMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "infra" / "grafana" / "waflow.json"
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum")


def families() -> dict[str, str]:
    out = {}
    for stage, metrics in (
        ("ingest", IngestMetrics()),
        ("streams", StreamMetrics()),
        ("sink", SinkMetrics()),
    ):
        registry: CollectorRegistry = metrics.registry
        for family in registry.collect():
            out[family.name] = stage
    return out


def test_every_metric_is_named_after_its_stage() -> None:
    for name, stage in families().items():
        assert name.startswith(f"waflow_{stage}_"), name


def test_the_dashboard_asks_only_for_exported_metrics() -> None:
    exported = {name + sfx for name in families() for sfx in SUFFIXES}
    asked = set(re.findall(r"waflow_[a-z_]+", DASHBOARD.read_text()))
    assert asked, "the dashboard has no queries"
    assert asked <= exported, sorted(asked - exported)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
