"""A local broker, and a whole stack on it, for the benchmarks that need their own: started on
free ports in a temporary directory, stopped on the way out."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.core import broker
from tests.benchmarks.e2e import Stack
from tests.conftest import ROOT, free_base_port


@dataclass(frozen=True)
class Local:
    bootstrap: str
    data: Path  # the broker's (and the stack's) directory
    base_port: int

    @property
    def broker_pid(self) -> int:
        return int(broker.nodes_for(self.data, 1, self.base_port)[0].pid_file.read_text())


@contextmanager
def local_broker(prefix: str) -> Iterator[Local]:
    data = Path(tempfile.mkdtemp(prefix=prefix))
    base = free_base_port()
    bootstrap = broker.start(data, base_port=base, jars_dir=ROOT / ".waflow")
    try:
        yield Local(bootstrap, data, base)
    finally:
        broker.stop(data, base_port=base)


@contextmanager
def local_stack(prefix: str) -> Iterator[tuple[Local, Stack]]:
    """The broker and the three stages (tests/benchmarks/e2e.py `Stack`), started."""
    with local_broker(prefix) as local:
        (local.data / "stack").mkdir()
        stack = Stack(local.bootstrap, local.data / "stack")
        stack.neighbours["broker"] = local.broker_pid
        try:
            stack.start()
            yield local, stack
        finally:
            stack.stop()
