"""Run the sink: own the ClickHouse engine, migrate, load, and answer `waflow query`.

The embedded engine allows one process per data path, so readers go through this process:
POST /query runs SQL on the sink's engine thread and answers JSON, for a caller that holds the
token this process wrote at start (sink/query.py says what the endpoint trusts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from infra.core.clickhouse import apply_ttl, client_for, migrate, target
from infra.core.collector import settle
from infra.core.serving import QuietServer
from infra.core.settings import Settings
from sink.consumer import SinkLoop
from sink.errors import QueryRefused
from sink.load import RowWriter
from sink.metrics import SinkMetrics
from sink.query import (
    CONTENT_TYPE,
    FORMAT_HEADER,
    LOOPBACK_HOSTS,
    WRITE_HEADER,
    authorized,
    loopback_host,
    write_token,
)
from sink.writer import ClickHouseWriter, Engine

log = logging.getLogger("waflow.sink")


def query_app(
    engine: Engine, metrics: SinkMetrics, token: str, health: Callable[[], str] = lambda: ""
) -> Starlette:
    """The sink's admin listener: /query, /metrics, /healthz (503 with the reason from
    `health` when it names one) and /readyz."""

    async def query(request: Request) -> Response:
        # Checked before the body is read: the port may be opened (WAFLOW_METRICS_HOST) so
        # Prometheus can scrape /metrics, and any web page can send requests to loopback.
        if request.client is None or request.client.host not in LOOPBACK_HOSTS:
            return PlainTextResponse("/query answers loopback clients only", status_code=403)
        if not loopback_host(request.headers.get("host")):
            return PlainTextResponse("/query answers loopback host names only", status_code=403)
        if not authorized(request.headers.get("authorization"), token):
            return PlainTextResponse(
                "/query needs the token of this sink's data directory (waflow query sends it)",
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
        if request.headers.get("content-type", "").split(";")[0].strip() != CONTENT_TYPE:
            return PlainTextResponse(f"/query takes {CONTENT_TYPE} only", status_code=415)
        write = request.headers.get(WRITE_HEADER, "").lower() == "true"
        sql = (await request.body()).decode(errors="replace")
        fmt = request.headers.get(FORMAT_HEADER, "")
        try:
            answer = await engine.query(sql, write=write, fmt=fmt)
        except QueryRefused as exc:
            return PlainTextResponse(str(exc), status_code=403)
        except Exception as exc:  # the engine's message is what the user needs to fix the SQL
            return PlainTextResponse(str(exc), status_code=400)
        if isinstance(answer, bytes):  # the SQL's FORMAT (or --format): the engine's bytes
            return Response(answer, media_type="application/octet-stream")
        columns, rows = answer
        return Response(
            orjson.dumps({"columns": columns, "rows": rows}, default=_json),
            media_type="application/json",
        )

    async def healthz(request: Request) -> Response:
        problem = health()
        return PlainTextResponse(problem or "ok", status_code=503 if problem else 200)

    async def metrics_page(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/query", query, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", healthz),
            Route("/metrics", metrics_page),
        ]
    )


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(type(value).__name__)


async def run(settings: Settings) -> None:
    where = target(settings.clickhouse_url)
    cluster = settings.clickhouse_cluster
    engine = Engine(
        client_for(settings),
        where.database,
        cluster,
        where.embedded,
        reader=client_for(settings, readonly=True),
    )
    applied = await engine.call(lambda: migrate(engine.client, where.database, cluster))
    ttl = settings.clickhouse_ttl_days
    await engine.call(lambda: apply_ttl(engine.client, where.database, ttl, cluster))
    log.info("migrations applied", extra={"applied": applied, "database": where.database})
    metrics = SinkMetrics()
    loop = SinkLoop(
        settings,
        RowWriter(
            ClickHouseWriter(engine, timedelta(days=settings.dedup_window_days)), where.embedded
        ),
        metrics,
    )
    settle()  # everything built so far lives as long as the process (infra/collector.py)
    server = QuietServer(
        uvicorn.Config(
            query_app(engine, metrics, write_token(settings.data_dir), loop.stalled),
            host=settings.admin_host,
            port=settings.admin_port_of("sink"),
            log_config=None,
            access_log=False,
        )
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, loop.stopping.set)
    serving = asyncio.create_task(server.serve())
    try:
        await loop.run()
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
        engine.close()
