"""The ingress app against a fake writer (the same contract runs against Kafka in integration)."""

from __future__ import annotations

import httpx
import pytest

from ingest.errors import BrokerUnavailableError
from ingest.producer import RawRecord
from ingest.routes import create_app
from ingest.verify import sign
from tests.conftest import make_settings


class FakeWriter:
    def __init__(self, fail: bool = False) -> None:
        self.records: list[RawRecord] = []
        self.fail = fail

    async def write(self, record: RawRecord) -> None:
        if self.fail:
            raise BrokerUnavailableError("down")
        self.records.append(record)


async def ready() -> bool:
    return True


def client(writer: FakeWriter, **env: str) -> httpx.AsyncClient:
    app = create_app(make_settings(**env), writer, ready)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


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
    assert record.key == b"42"
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
    async with client(FakeWriter()) as c:
        assert (await c.put("/webhook", content=b"{}")).status_code == 405
        assert (await c.delete("/webhook")).status_code == 405


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


async def test_metrics_count_outcomes() -> None:
    async with client(FakeWriter()) as c:
        await c.post("/webhook", content=b"{}")
        text = (await c.get("/metrics")).text
    assert 'waflow_ingest_requests_total{outcome="bad_signature"} 1.0' in text
    assert (await client(FakeWriter()).get("/healthz")).status_code == 200
