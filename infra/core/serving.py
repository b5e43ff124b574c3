"""A uvicorn server that leaves SIGINT and SIGTERM to its owner: the sink loop stops the sink's
admin server, and the ingress's public server stops its admin server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn


class QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
