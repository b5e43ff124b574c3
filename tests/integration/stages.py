"""Run waflow's stages as real processes for integration tests, and read typed topics back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from infra.core.settings import Settings
from infra.core.topics import ensure_topics
from schemas import codec
from tests.conftest import SECRETS

ID_FIELD = {
    "FlowResponse": "message_id",
    "FlowEvent": "event_id",
    "WebhookChange": "change_id",
    "DeadLetter": "dead_letter_id",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stage_env(bootstrap: str, data: Path, **extra: str) -> dict[str, str]:
    """Settings for one isolated stack: its own topic prefix, data dir and ports."""
    return {
        "WAFLOW_APP_SECRETS": SECRETS,
        "WAFLOW_VERIFY_TOKEN": "chaos-verify-token",
        "WAFLOW_KAFKA_BOOTSTRAP": bootstrap,
        "WAFLOW_DATA_DIR": str(data),
        "WAFLOW_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}",
        "WAFLOW_STREAMS_PORT": str(free_port()),
        "WAFLOW_SINK_PORT": str(free_port()),
        "WAFLOW_INGEST_ADMIN_PORT": str(free_port()),
        "WAFLOW_SINK_BATCH_SECONDS": "0.5",
        "WAFLOW_LOG_LEVEL": "WARNING",
        **extra,
    }


async def stream_stack(
    bootstrap: str, data: Path, **extra: str
) -> tuple[dict[str, str], Settings, list[str]]:
    """An isolated stack's env and settings with its topics created, and its typed topics."""
    env = stage_env(bootstrap, data, **extra)
    settings = Settings.from_env(env)
    await ensure_topics(settings)
    t = settings.topics
    return env, settings, [t.responses, t.events, t.other]


class Stage:
    """One `waflow <stage>` process; its output goes to a log file read back on failure."""

    def __init__(
        self,
        stage: str,
        env: dict[str, str],
        log: Path,
        tree: Path | None = None,  # another checkout (a benchmark's previous release)
        cli: str = "infra.control.cli",  # the command's module in that checkout
    ) -> None:
        self.stage, self.env, self.log = stage, env, log
        self.tree, self.cli = tree, cli
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Stage:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.cli, self.stage],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=out,
                cwd=self.tree,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout_s: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


async def read_typed(
    bootstrap: str, topics: list[str], expected: int, timeout_s: float = 60, quiet_polls: int = 3
) -> list[tuple[str, bytes]]:
    """(dedup id, key) of every committed record on `topics`, until `expected` or the timeout.

    `expected` counts distinct ids, so duplicates never end the reading early; past it,
    reading goes on until `quiet_polls` empty polls: late duplicates count too.
    """
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=uuid.uuid4().hex,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[tuple[str, bytes]] = []
    distinct: set[str] = set()
    decode = codec().decode
    try:
        deadline = time.monotonic() + timeout_s
        idle = 0
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for msgs in batch.values():
                for m in msgs:
                    name, record = decode(m.value or b"")
                    seen.append((record[ID_FIELD[name]], m.key or b""))
                    distinct.add(record[ID_FIELD[name]])
            idle = 0 if batch else idle + 1
            if len(distinct) >= expected and idle >= quiet_polls:
                break
    finally:
        await consumer.stop()
    return seen
