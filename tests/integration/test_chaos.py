"""The short version of `make chaos` that runs in `make test`: a minute and a half of signed load
while each stage is killed with SIGKILL and restarted, and the stream worker stopped with
SIGTERM; then every acked item is in ClickHouse exactly once, nothing valid is a dead letter,
and `waflow reconcile` finds no gap."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.run import main


def test_short_chaos_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    code = main(
        [
            "--minutes", "1.5",
            "--rate", "15",
            "--brokers", "1",
            "--faults", "ingest,streams,sink,streams-term",
            "--every", "20",
            "--out", str(tmp_path / "chaos.json"),
        ]
    )  # fmt: skip
    assert code == 0, (tmp_path / "chaos.json").read_text()
