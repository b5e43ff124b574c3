"""The ingress's two Starlette apps, thin by design: the public one serves only /webhook (the
handshake and signed POSTs); the admin one (WAFLOW_ADMIN_HOST:WAFLOW_ADMIN_PORT, loopback by
default) serves /metrics, /healthz and /readyz, so probes and Prometheus never need the public
listener, and the public listener shows nothing but the webhook."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Lifespan

from infra.core.settings import Settings
from ingest.errors import BusyError, IngestError, SlowBodyError, TooLargeError
from ingest.metrics import IngestMetrics
from ingest.producer import RawRecord, RawWriter
from ingest.refusals import RefusalLog
from ingest.verify import header_digest, partition_key, verify_digest, verify_handshake
from schemas import envelope

log = logging.getLogger("waflow.ingest")
# Bodies of error answers are fixed strings: a 401 never hints at the expected signature.
ANSWERS = {
    200: "OK",
    401: "invalid signature",
    403: "forbidden",
    405: "method not allowed",
    408: "request body too slow",
    413: "payload too large",
    503: "temporarily unavailable, retry",
}


def create_app(
    settings: Settings,
    writer: RawWriter,
    metrics: IngestMetrics | None = None,
    lifespan: Lifespan[Starlette] | None = None,
) -> Starlette:
    settings.require_ingress_secrets()
    stats = metrics or IngestMetrics()
    secrets = settings.app_secrets
    limit = settings.max_body_bytes
    body_timeout = settings.body_timeout_s
    # Requests in the handlers right now; past the cap they are refused before any work.
    cap = settings.max_concurrent_requests
    inflight = 0
    refusals = RefusalLog(log, settings.refusal_log_s)
    debug = log.isEnabledFor(logging.DEBUG)
    # Request ids: a random 64-bit prefix per process and a counter, 32 hex digits like a
    # UUID's. uuid4() read the kernel's random source on every request (5 % of the ingress).
    prefix = os.urandom(8).hex()
    numbers = itertools.count()
    # Every connection that reaches a handler passed the mTLS name guard, so the name it
    # matched is the configured one.
    tls_client = (
        ((envelope.TLS_CLIENT, settings.tls_client_name.encode()),)
        if settings.tls_client_name
        else ()
    )

    async def handshake(request: Request) -> Response:
        try:
            challenge = verify_handshake(request.query_params, settings.verify_token)
        except IngestError as exc:
            stats.requests.labels(exc.outcome).inc()
            refusals.refused("handshake refused", exc.outcome, {})
            return PlainTextResponse(ANSWERS[exc.status], status_code=exc.status)
        stats.requests.labels("handshake_ok").inc()
        return PlainTextResponse(challenge)

    async def receive(request: Request) -> Response:
        nonlocal inflight
        started = time.perf_counter()
        request_id = f"{prefix}{next(numbers):016x}"
        try:
            if inflight >= cap:
                raise BusyError(f"{inflight} requests in flight, cap {cap}")
            inflight += 1
            try:
                # The header is checked before a byte of body is read: a refusal costs no read.
                header = request.headers.get(envelope.SIGNATURE, "")
                digest = header_digest(header)
                body = await read_body(request, limit, body_timeout)
                app = verify_digest(body, digest, secrets)
                record = RawRecord(
                    body=body,
                    key=partition_key(digest),
                    headers=(
                        (envelope.SIGNATURE, header.encode()),
                        (envelope.RECEIVED_MS, str(int(time.time() * 1000)).encode()),
                        (envelope.APP, app.encode()),
                        (envelope.REQUEST_ID, request_id.encode()),
                        (envelope.CONTENT_TYPE, request.headers.get("content-type", "").encode()),
                        # With WAFLOW_TRUSTED_PROXIES set, this is the address the proxy saw.
                        (
                            envelope.CLIENT_ADDR,
                            (request.client.host if request.client else "").encode(),
                        ),
                        *tls_client,
                    ),
                )
                produce_started = time.perf_counter()
                await writer.write(record)
                stats.produce_latency.observe(time.perf_counter() - produce_started)
            finally:
                inflight -= 1
        except IngestError as exc:
            stats.requests.labels(exc.outcome).inc()
            stats.latency.observe(time.perf_counter() - started)
            refusals.refused(
                "webhook refused", exc.outcome, {"reason": str(exc), "request_id": request_id}
            )
            headers = {"x-request-id": request_id}
            if exc.status == 503:
                headers["retry-after"] = "1"
            return PlainTextResponse(ANSWERS[exc.status], status_code=exc.status, headers=headers)
        stats.requests.labels("accepted").inc()
        stats.bytes_accepted.inc(len(body))
        stats.latency.observe(time.perf_counter() - started)
        if debug:  # the hot path builds no log record unless asked to
            log.debug(
                "webhook accepted", extra={"request_id": request_id, "app": app, "bytes": len(body)}
            )
        return PlainTextResponse("OK", headers={"x-request-id": request_id})

    async def webhook(request: Request) -> Response:
        if request.method == "GET":
            return await handshake(request)
        if request.method == "POST":
            return await receive(request)
        # Starlette routes HEAD to a GET route; the webhook answers GET and POST only.
        stats.requests.labels("bad_method").inc()
        return PlainTextResponse(ANSWERS[405], status_code=405, headers={"allow": "GET, POST"})

    @contextlib.asynccontextmanager
    async def lifespan_with_log(app: Starlette) -> AsyncIterator[None]:
        ticking = asyncio.create_task(refusals.run())
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            ticking.cancel()
            refusals.flush()

    return Starlette(
        routes=[
            Route("/webhook", webhook, methods=["GET", "POST"]),
        ],
        lifespan=lifespan_with_log,
    )


def admin_app(metrics: IngestMetrics, ready: Callable[[], Awaitable[bool]]) -> Starlette:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        if await ready():
            return PlainTextResponse("ready")
        return PlainTextResponse("producer not connected", status_code=503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """Read the body once, refusing as soon as it passes `limit` bytes or `timeout_s` seconds."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLargeError(f"content-length {declared} over {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLargeError(f"body over {limit} bytes")
                chunks.append(chunk)
    except TimeoutError as exc:
        raise SlowBodyError(f"{size} body bytes in {timeout_s} s") from exc
    return b"".join(chunks)
