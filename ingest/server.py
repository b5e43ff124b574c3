"""Run the ingress: the real Kafka writer, the Starlette app, uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
import uvloop
from starlette.applications import Starlette

from infra.core import kafka
from infra.core.collector import settle
from infra.core.serving import QuietServer
from infra.core.settings import Settings
from ingest.metrics import IngestMetrics
from ingest.producer import KafkaRawWriter
from ingest.routes import admin_app, create_app
from ingest.tls import Reloader, client_name_guard, header_deadline, server_context

log = logging.getLogger("waflow.ingest")


def build(settings: Settings) -> tuple[Starlette, Starlette]:
    """The public webhook app and the admin app, sharing one writer and one set of metrics."""
    metrics = IngestMetrics()
    writer = KafkaRawWriter(
        kafka.producer(settings), settings.topics.raw, settings.produce_timeout_s
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Connect in the background: until the broker answers, POSTs get 503 and the platform
        # retries, rather than the ingress refusing to start.
        connecting = asyncio.create_task(writer.start())
        yield
        connecting.cancel()
        await writer.stop()

    public = create_app(settings, writer, metrics, lifespan=lifespan)
    return public, admin_app(metrics, writer.ready)


def admin_config(settings: Settings, app: Starlette) -> uvicorn.Config:
    """Plain HTTP on WAFLOW_ADMIN_HOST (loopback by default): /metrics, /healthz, /readyz."""
    cfg = uvicorn.Config(
        app,
        host=settings.admin_host,
        port=settings.admin_port_of("ingest"),
        access_log=False,
        log_config=None,
        lifespan="off",
    )
    return cfg


def config(settings: Settings, app: Starlette) -> tuple[uvicorn.Config, Reloader | None]:
    """uvicorn's configuration: plain HTTP, or HTTPS with our context (and mTLS name guard)."""
    proxies = list(settings.trusted_proxies)
    cfg = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        access_log=False,
        log_config=None,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
        # X-Forwarded-For is believed only from the configured proxies; without any, the peer
        # address is the client address (uvicorn would otherwise trust 127.0.0.1).
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )
    cfg.load()
    cfg.http_protocol_class = header_deadline(cfg.http_protocol_class, settings.header_timeout_s)
    if settings.tls_cert is None:
        return cfg, None
    ctx = server_context(settings)
    cfg.ssl = ctx
    if settings.tls_client_name:
        cfg.http_protocol_class = client_name_guard(
            cfg.http_protocol_class, settings.tls_client_name
        )
    return cfg, Reloader(ctx, settings)


def serve(settings: Settings) -> None:
    app, admin = build(settings)
    cfg, reloader = config(settings, app)
    settle()  # everything built so far lives as long as the process (infra/collector.py)
    scheme = "https" if reloader else "http"
    log.info(
        "ingress listening",
        extra={
            "url": f"{scheme}://{settings.http_host}:{settings.http_port}/webhook",
            "mutual_tls": bool(settings.tls_client_name),
            "admin": f"http://{settings.admin_host}:{settings.admin_port_of('ingest')}",
        },
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(cfg, admin_config(settings, admin), reloader, settings.tls_reload_s))


async def _serve(
    cfg: uvicorn.Config, admin: uvicorn.Config, reloader: Reloader | None, reload_s: float
) -> None:
    watching = asyncio.create_task(reloader.run(reload_s)) if reloader else None
    public = uvicorn.Server(cfg)
    # The admin server leaves signals to the public one, and stops when it stops.
    admin_server = QuietServer(admin)
    admin_serving = asyncio.create_task(admin_server.serve())
    try:
        await public.serve()
    finally:
        admin_server.should_exit = True
        await admin_serving
        if watching:
            watching.cancel()
