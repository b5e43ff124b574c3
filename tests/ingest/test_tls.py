"""HTTPS and the platform's mutual TLS, with a certificate authority made in the test."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from infra.core.errors import SettingsError
from ingest.routes import create_app
from ingest.server import config
from ingest.tls import server_context
from ingest.verify import sign
from tests.conftest import make_settings
from tests.fakes import FakeWriter
from tests.ingest.certs import Authority, Issued

PLATFORM = "client.webhooks.example.test"
BODY = b'{"object": "whatsapp_business_account", "entry": []}'


async def ready() -> bool:
    return True


@dataclass
class Pki:
    ca: Authority
    other_ca: Authority
    server: Issued
    client: Issued
    wrong_name: Issued
    other_client: Issued


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca, other = Authority("waflow-test-ca", tmp_path), Authority("other-ca", tmp_path)
    return Pki(
        ca,
        other,
        ca.issue("localhost", client=False, stem="server"),
        ca.issue(PLATFORM, client=True, stem="client"),
        ca.issue("someone.else.test", client=True, stem="wrong"),
        other.issue(PLATFORM, client=True, stem="other"),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    url: str
    writer: FakeWriter
    reloader: object


async def start(**env: str) -> AsyncIterator[Running]:
    port = free_port()
    settings = make_settings(WAFLOW_HTTP_PORT=str(port), WAFLOW_TLS_RELOAD_SECONDS="0.1", **env)
    writer = FakeWriter()
    cfg, reloader = config(settings, create_app(settings, writer))
    cfg.lifespan = "off"
    server = uvicorn.Server(cfg)
    serving = asyncio.create_task(server.serve())
    watching = asyncio.create_task(reloader.run(0.1)) if reloader else None
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        scheme = "https" if reloader else "http"
        yield Running(f"{scheme}://127.0.0.1:{port}", writer, reloader)
    finally:
        server.should_exit = True
        await serving
        if watching:
            watching.cancel()


async def post(run: Running, ca: Path, client: Issued | None) -> httpx.Response:
    ctx = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    async with httpx.AsyncClient(verify=ctx) as c:
        return await c.post(
            f"{run.url}/webhook",
            content=BODY,
            headers={"x-hub-signature-256": sign(BODY, b"shop-secret")},
        )


@pytest.fixture
async def https(pki: Pki) -> AsyncIterator[Running]:
    async for run in start(
        WAFLOW_TLS_CERT=str(pki.server.cert), WAFLOW_TLS_KEY=str(pki.server.key)
    ):
        yield run


@pytest.fixture
async def mtls(pki: Pki) -> AsyncIterator[Running]:
    async for run in start(
        WAFLOW_TLS_CERT=str(pki.server.cert),
        WAFLOW_TLS_KEY=str(pki.server.key),
        WAFLOW_TLS_CLIENT_CA=str(pki.ca.pem),
        WAFLOW_TLS_CLIENT_NAME=PLATFORM,
    ):
        yield run


async def test_https_signed_post_is_written(https: Running, pki: Pki) -> None:
    r = await post(https, pki.ca.pem, None)
    assert r.status_code == 200
    [record] = https.writer.records
    assert record.body == BODY
    assert dict(record.headers)["waflow-client-addr"] == b"127.0.0.1"


def test_context_is_tls_1_2_or_newer_and_requires_client_certs_for_mtls(pki: Pki) -> None:
    settings = make_settings(
        WAFLOW_TLS_CERT=str(pki.server.cert),
        WAFLOW_TLS_KEY=str(pki.server.key),
        WAFLOW_TLS_CLIENT_CA=str(pki.ca.pem),
        WAFLOW_TLS_CLIENT_NAME=PLATFORM,
    )
    ctx = server_context(settings)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED


async def test_mtls_right_client_passes_and_its_name_is_recorded(mtls: Running, pki: Pki) -> None:
    r = await post(mtls, pki.ca.pem, pki.client)
    assert r.status_code == 200
    [record] = mtls.writer.records
    assert dict(record.headers)["waflow-tls-client"] == PLATFORM.encode()


@pytest.mark.parametrize("who", ["none", "other_ca", "wrong_name"])
async def test_mtls_refuses_before_reading_a_request(mtls: Running, pki: Pki, who: str) -> None:
    client = {"none": None, "other_ca": pki.other_client, "wrong_name": pki.wrong_name}[who]
    with pytest.raises(httpx.TransportError):
        await post(mtls, pki.ca.pem, client)
    assert mtls.writer.records == []


async def test_mtls_name_only_in_the_common_name_is_refused(mtls: Running, pki: Pki) -> None:
    # The platform's name as the subject CN, another name as the only SAN: no CN fallback.
    cn_only = pki.ca.issue(PLATFORM, client=True, stem="cn-only", san="someone.else.test")
    with pytest.raises(httpx.TransportError):
        await post(mtls, pki.ca.pem, cn_only)
    assert mtls.writer.records == []


async def test_revoked_client_certificate_is_refused_and_a_new_list_is_reloaded(
    pki: Pki, tmp_path: Path
) -> None:
    revoked_at_start = pki.ca.issue(PLATFORM, client=True, stem="revoked")
    crl = pki.ca.revoke([revoked_at_start], tmp_path / "platform.crl", age_s=60)
    async for run in start(
        WAFLOW_TLS_CERT=str(pki.server.cert),
        WAFLOW_TLS_KEY=str(pki.server.key),
        WAFLOW_TLS_CLIENT_CA=str(pki.ca.pem),
        WAFLOW_TLS_CLIENT_NAME=PLATFORM,
        WAFLOW_TLS_CLIENT_CRL=str(crl),
    ):
        with pytest.raises(httpx.TransportError):
            await post(run, pki.ca.pem, revoked_at_start)
        assert (await post(run, pki.ca.pem, pki.client)).status_code == 200
        # The CA revokes the platform's certificate too; the reloader picks the list up.
        pki.ca.revoke([revoked_at_start, pki.client], crl)
        accepted = 1
        for _ in range(50):  # until the reloader's next tick
            try:
                await post(run, pki.ca.pem, pki.client)
            except httpx.TransportError:
                break
            accepted += 1
            await asyncio.sleep(0.1)
        with pytest.raises(httpx.TransportError):
            await post(run, pki.ca.pem, pki.client)
        assert len(run.writer.records) == accepted < 50


def fetch_cert(run: Running, ctx: ssl.SSLContext) -> bytes:
    host, port = run.url.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.getpeercert(binary_form=True) or b""


async def test_renewed_certificate_is_served_without_restart(https: Running, pki: Pki) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.ca.pem))
    assert await asyncio.to_thread(fetch_cert, https, ctx) == pki.server.der
    async with httpx.AsyncClient(verify=ctx) as kept:  # a connection open across the renewal
        assert (await kept.get(f"{https.url}/webhook")).status_code == 403  # a handshake
        renewed = pki.ca.issue("localhost", client=False, stem="server")  # same files
        for _ in range(50):
            if await asyncio.to_thread(fetch_cert, https, ctx) == renewed.der:
                break
            await asyncio.sleep(0.1)
        assert await asyncio.to_thread(fetch_cert, https, ctx) == renewed.der
        assert (await kept.get(f"{https.url}/webhook")).status_code == 403  # a handshake


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WAFLOW_TLS_CERT": "/nonexistent.pem", "WAFLOW_TLS_KEY": "/k"}, "not a readable file"),
        ({"WAFLOW_TLS_CERT": __file__}, "both WAFLOW_TLS_CERT and WAFLOW_TLS_KEY"),
        ({"WAFLOW_TLS_CLIENT_NAME": PLATFORM}, "both WAFLOW_TLS_CLIENT_CA"),
        ({"WAFLOW_TLS_CLIENT_CRL": __file__}, "set WAFLOW_TLS_CLIENT_CA"),
    ],
)
def test_tls_settings_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        make_settings(**env)


@pytest.mark.parametrize(
    ("trusted", "recorded"), [("", b"127.0.0.1"), ("127.0.0.1", b"203.0.113.9")]
)
async def test_forwarded_address_is_believed_only_from_trusted_proxies(
    trusted: str, recorded: bytes
) -> None:
    async for run in start(WAFLOW_TRUSTED_PROXIES=trusted):
        async with httpx.AsyncClient() as c:
            r = await c.post(
                f"{run.url}/webhook",
                content=BODY,
                headers={
                    "x-hub-signature-256": sign(BODY, b"shop-secret"),
                    "x-forwarded-for": "203.0.113.9",
                    "x-forwarded-proto": "https",
                },
            )
        assert r.status_code == 200
        assert dict(run.writer.records[0].headers)["waflow-client-addr"] == recorded
