"""The ingress app against a fake writer (the same contract runs against Kafka in integration)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from ingest.metrics import IngestMetrics
from ingest.routes import admin_app, create_app
from ingest.verify import header_digest, partition_key, sign
from tests.conftest import make_settings
from tests.fakes import FakeWriter


async def ready() -> bool:
    return True


def client(
    writer: FakeWriter, metrics: IngestMetrics | None = None, **env: str
) -> httpx.AsyncClient:
    app = create_app(make_settings(**env), writer, metrics)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def scrape(metrics: IngestMetrics) -> str:
    """What the admin listener's /metrics shows for the public app's counters."""
    transport = httpx.ASGITransport(app=admin_app(metrics, ready))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        return (await c.get("/metrics")).text


async def test_signed_post_is_written_with_headers() -> None:
    writer = FakeWriter()
    body = '{"entry":[{"id":"42","changes":[]}],"x":"Zoë"}'.encode()
    async with client(writer) as c:
        r = await c.post(
            "/webhook",
            content=body,
            headers={
                "x-hub-signature-256": sign(body, b"support-secret"),
                "content-type": "application/json",
            },
        )
    assert r.status_code == 200
    [record] = writer.records
    assert record.body == body
    assert record.key == partition_key(header_digest(sign(body, b"support-secret")))
    headers = dict(record.headers)
    assert headers["waflow-app"] == b"support"
    assert headers["x-hub-signature-256"] == sign(body, b"support-secret").encode()
    assert headers["waflow-received-ms"].isdigit()
    assert headers["waflow-request-id"].decode() == r.headers["x-request-id"]
    assert headers["content-type"] == b"application/json"


@pytest.mark.parametrize("signature", [None, "sha256=zz", sign(b"other", b"shop-secret")])
async def test_bad_signature_is_401_reveals_nothing_writes_nothing(signature: str | None) -> None:
    writer = FakeWriter()
    headers = {"x-hub-signature-256": signature} if signature else {}
    async with client(writer) as c:
        r = await c.post("/webhook", content=b"{}", headers=headers)
    assert r.status_code == 401
    assert r.text == "invalid signature"
    assert sign(b"{}", b"shop-secret")[7:] not in r.text
    assert writer.records == []


async def test_too_large_is_413() -> None:
    writer = FakeWriter()
    body = b"x" * 2048
    async with client(writer, WAFLOW_MAX_BODY_BYTES="1024") as c:
        r = await c.post(
            "/webhook", content=body, headers={"x-hub-signature-256": sign(body, b"shop-secret")}
        )
    assert r.status_code == 413
    assert writer.records == []


async def test_other_methods_are_405() -> None:
    metrics = IngestMetrics()
    async with client(FakeWriter(), metrics) as c:
        assert (await c.put("/webhook", content=b"{}")).status_code == 405
        assert (await c.delete("/webhook")).status_code == 405
        head = await c.head("/webhook")
        assert head.status_code == 405
        assert head.headers["allow"] == "GET, POST"
    text = await scrape(metrics)
    assert 'waflow_ingest_requests_total{outcome="bad_signature"} 0.0' in text


async def call(app: Any, headers: list[tuple[bytes, bytes]], receive: Any) -> list[Any]:
    """One raw ASGI request, so a test controls when (and whether) body bytes arrive."""
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhook",
        "raw_path": b"/webhook",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"t"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8080),
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("signature", [None, b"sha256=zz", b"md5=" + b"0" * 64])
async def test_missing_or_malformed_signature_is_refused_before_the_body_is_read(
    signature: bytes | None,
) -> None:
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        await asyncio.sleep(3600)  # a client that sent its headers and stalled
        raise AssertionError

    app = create_app(make_settings(), FakeWriter())
    headers = [(b"content-length", b"1000000")]
    if signature is not None:
        headers.append((b"x-hub-signature-256", signature))
    sent = await asyncio.wait_for(call(app, headers, receive), 5)
    assert sent[0]["status"] == 401
    assert reads == 0


async def test_a_body_slower_than_the_body_timeout_is_408() -> None:
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError

    writer = FakeWriter()
    app = create_app(make_settings(WAFLOW_BODY_TIMEOUT_S="0.2"), writer)
    headers = [(b"x-hub-signature-256", sign(b"{}", b"shop-secret").encode())]
    sent = await asyncio.wait_for(call(app, headers, receive), 5)
    assert sent[0]["status"] == 408
    assert writer.records == []


async def test_requests_past_the_concurrency_cap_get_503_with_retry_after() -> None:
    hold = asyncio.Event()
    writer = FakeWriter(hold=hold)
    body = b"{}"
    headers = {"x-hub-signature-256": sign(body, b"shop-secret")}
    async with client(writer, WAFLOW_MAX_CONCURRENT_REQUESTS="2") as c:
        waiting = [
            asyncio.create_task(c.post("/webhook", content=body, headers=headers)) for _ in range(2)
        ]
        while writer.waiting < 2:
            await asyncio.sleep(0.01)
        busy = await c.post("/webhook", content=body, headers=headers)
        assert (busy.status_code, busy.headers["retry-after"]) == (503, "1")
        hold.set()
        assert [(await t).status_code for t in waiting] == [200, 200]
        # The cap counts requests in flight, not requests ever: room again once they finish.
        assert (await c.post("/webhook", content=body, headers=headers)).status_code == 200
    assert len(writer.records) == 3


async def test_a_flood_of_bad_requests_writes_a_bounded_number_of_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="waflow.ingest")
    metrics = IngestMetrics()
    app = create_app(make_settings(WAFLOW_REFUSAL_LOG_SECONDS="3600"), FakeWriter(), metrics)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        for i in range(10_000):
            if i % 2:
                await c.post("/webhook", content=b"{}", headers={"x-hub-signature-256": "bad"})
            else:
                await c.get("/webhook", params={"hub.mode": "subscribe", "hub.verify_token": "x"})
    text = await scrape(metrics)
    # Every refusal counted; at most FULL_LINES full lines and one summary in the log.
    assert 'waflow_ingest_requests_total{outcome="bad_signature"} 5000.0' in text
    assert 'waflow_ingest_requests_total{outcome="bad_handshake"} 5000.0' in text
    lines = [r for r in caplog.records if r.name == "waflow.ingest"]
    assert len(lines) == 6
    summary = lines[-1].__dict__
    assert summary["counts"] == {"bad_handshake": 4997, "bad_signature": 4998}


async def test_broker_down_is_503() -> None:
    async with client(FakeWriter(fail=True)) as c:
        r = await c.post(
            "/webhook", content=b"{}", headers={"x-hub-signature-256": sign(b"{}", b"shop-secret")}
        )
    assert r.status_code == 503


async def test_handshake_three_cases() -> None:
    async with client(FakeWriter()) as c:
        ok = await c.get(
            "/webhook",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": "verify-me",
                "hub.challenge": "CHALLENGE-1",
            },
        )
        assert (ok.status_code, ok.text) == (200, "CHALLENGE-1")
        assert ok.headers["content-type"].startswith("text/plain")
        wrong = await c.get(
            "/webhook",
            params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
        )
        assert wrong.status_code == 403
        mode = await c.get("/webhook", params={"hub.mode": "x", "hub.verify_token": "verify-me"})
        assert mode.status_code == 403


async def test_metrics_health_and_readiness_are_on_the_admin_app_only() -> None:
    metrics = IngestMetrics()
    async with client(FakeWriter(), metrics) as c:
        await c.post("/webhook", content=b"{}")
        for path in ("/metrics", "/healthz", "/readyz"):
            assert (await c.get(path)).status_code == 404, path
    assert 'waflow_ingest_requests_total{outcome="bad_signature"} 1.0' in await scrape(metrics)

    async def not_yet() -> bool:
        return False

    transport = httpx.ASGITransport(app=admin_app(metrics, not_yet))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as admin:
        assert (await admin.get("/healthz")).status_code == 200
        assert (await admin.get("/readyz")).status_code == 503
