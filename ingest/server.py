"""Run the ingress: the real Kafka writer, the Starlette app, uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette

from infra.settings import Settings
from ingest.producer import KafkaRawWriter
from ingest.routes import create_app

log = logging.getLogger("waflow.ingest")


def build(settings: Settings) -> Starlette:
    writer = KafkaRawWriter(
        settings.kafka_bootstrap, settings.topics.raw, settings.produce_timeout_s
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Connect in the background: until the broker answers, POSTs get 503 and the platform
        # retries, rather than the ingress refusing to start.
        connecting = asyncio.create_task(writer.start())
        yield
        connecting.cancel()
        await writer.stop()

    return create_app(settings, writer, writer.ready, lifespan=lifespan)


def serve(settings: Settings) -> None:
    app = build(settings)
    log.info(
        "ingress listening",
        extra={"url": f"http://{settings.http_host}:{settings.http_port}/webhook"},
    )
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        access_log=False,
        log_config=None,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
    )
