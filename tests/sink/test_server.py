"""The sink's web port: /query for the token's holder on a loopback name, its own content type."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest

from sink.errors import QueryRefused
from sink.metrics import SinkMetrics
from sink.query import CONTENT_TYPE, WRITE_HEADER
from sink.server import query_app
from sink.writer import Engine

TOKEN = "t0ken"
GOOD = {"authorization": f"Bearer {TOKEN}", "content-type": CONTENT_TYPE}


class OneRowEngine:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    async def query(
        self, sql: str, write: bool = False, fmt: str = ""
    ) -> tuple[list[str], list[list[Any]]]:
        if "file(" in sql:
            raise QueryRefused("refused: file reach outside the database")
        self.calls.append((sql, write))
        return ["x"], [[1]]


async def post(
    headers: dict[str, str], client_host: str = "127.0.0.1", engine: OneRowEngine | None = None
) -> httpx.Response:
    app = query_app(cast(Engine, engine or OneRowEngine()), SinkMetrics(), TOKEN)
    transport = httpx.ASGITransport(app=app, client=(client_host, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8082") as c:
        return await c.post("/query", content=b"SELECT 1", headers=headers)


async def test_query_answers_the_token_holder_read_only_by_default() -> None:
    engine = OneRowEngine()
    assert (await post(GOOD, engine=engine)).json() == {"columns": ["x"], "rows": [[1]]}
    await post({**GOOD, WRITE_HEADER: "true"}, engine=engine)
    assert engine.calls == [("SELECT 1", False), ("SELECT 1", True)]


@pytest.mark.parametrize(
    ("headers", "client", "status"),
    [
        ({"content-type": CONTENT_TYPE}, "127.0.0.1", 401),
        ({**GOOD, "authorization": "Bearer t0kem"}, "127.0.0.1", 401),
        ({**GOOD, "authorization": TOKEN}, "127.0.0.1", 401),
        ({**GOOD, "host": "rebound.example.com:8082"}, "127.0.0.1", 403),
        ({**GOOD, "content-type": "text/plain"}, "127.0.0.1", 415),
        ({**GOOD, "content-type": "application/x-www-form-urlencoded"}, "127.0.0.1", 415),
        (GOOD, "10.1.2.3", 403),
    ],
)
async def test_query_refuses_anything_but_its_own_caller(
    headers: dict[str, str], client: str, status: int
) -> None:
    engine = OneRowEngine()
    assert (await post(headers, client, engine)).status_code == status
    assert engine.calls == []


async def test_a_statement_reaching_outside_is_403() -> None:
    app = query_app(cast(Engine, OneRowEngine()), SinkMetrics(), TOKEN)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8082") as c:
        r = await c.post("/query", content=b"SELECT file('/etc/passwd')", headers=GOOD)
    assert (r.status_code, r.text) == (403, "refused: file reach outside the database")


async def test_health_is_503_with_the_reason_while_a_batch_waits_too_long() -> None:
    reason = ""
    app = query_app(cast(Engine, OneRowEngine()), SinkMetrics(), TOKEN, lambda: reason)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        assert (await c.get("/healthz")).status_code == 200
        reason = "no commit for over 120 s while a batch waits to be written"
        answer = await c.get("/healthz")
        assert (answer.status_code, answer.text) == (503, reason)
