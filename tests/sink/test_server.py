"""The sink's web port: /metrics for anyone allowed to reach it, /query for loopback only."""

from __future__ import annotations

from typing import Any, cast

import httpx

from sink.metrics import SinkMetrics
from sink.server import query_app
from sink.writer import Engine


class OneRowEngine:
    async def query(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        return ["x"], [[1]]


async def post(client_host: str) -> httpx.Response:
    app = query_app(cast(Engine, OneRowEngine()), SinkMetrics())
    transport = httpx.ASGITransport(app=app, client=(client_host, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://sink") as c:
        return await c.post("/query", content=b"SELECT 1")


async def test_query_answers_loopback_and_refuses_any_other_client() -> None:
    assert (await post("127.0.0.1")).json() == {"columns": ["x"], "rows": [[1]]}
    refused = await post("10.1.2.3")
    assert refused.status_code == 403 and "loopback" in refused.text
