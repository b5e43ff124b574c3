"""HTTPS at the edge: a server TLS context that picks up renewed certificates, and the platform's
mutual TLS, checked when the connection is made, before a byte of any request is read.

Renewal: `Reloader.check()` loads a changed certificate/key pair into the live context. New
handshakes get the new certificate and open connections keep theirs, so no request is dropped.
A half-written pair fails to load and is tried again on the next tick, while the old pair goes
on serving. CA bundles (client CAs) and the revocation list are re-read the same way; OpenSSL
can add CAs to a live context but not remove them, so dropping an old CA after a rotation takes
a restart. Of several revocation lists from one CA, OpenSSL uses the newest (latest
lastUpdate), so a reloaded list takes effect for every new handshake.

The client name is matched on the certificate's subject alternative names only: the subject's
common name is not a name a CA vouches for the same way (RFC 6125 deprecates the fallback).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from infra.core.settings import Settings
from ingest.errors import TlsConfigError

log = logging.getLogger("waflow.ingest.tls")


def server_context(settings: Settings) -> ssl.SSLContext:
    """TLS 1.2+ with the library's modern cipher defaults; client certificates when configured."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
        if settings.tls_client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=str(settings.tls_client_ca))
        if settings.tls_client_crl is not None:
            ctx.load_verify_locations(cafile=str(settings.tls_client_crl))
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(
            "cannot load WAFLOW_TLS_CERT/WAFLOW_TLS_KEY/WAFLOW_TLS_CLIENT_CA/"
            f"WAFLOW_TLS_CLIENT_CRL: {exc}"
        ) from exc
    return ctx


def names_of(peercert: dict[str, Any] | None) -> set[str]:
    """The DNS names in the certificate's subjectAltName (never its subject common name)."""
    if not peercert:
        return set()
    return {value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS"}


class Reloader:
    """Watches the certificate, key and client CA files and reloads them into the context."""

    def __init__(self, ctx: ssl.SSLContext, settings: Settings) -> None:
        self.ctx = ctx
        self.cert, self.key = settings.tls_cert, settings.tls_key
        self.client_ca = settings.tls_client_ca
        self.client_crl = settings.tls_client_crl
        self.seen = self._stamp()

    def _stamp(self) -> tuple[float, ...]:
        files = (self.cert, self.key, self.client_ca, self.client_crl)
        return tuple(p.stat().st_mtime_ns if p and p.exists() else 0 for p in files)

    def check(self) -> bool:
        """Reload if a file changed since the last successful load; True when reloaded."""
        stamp = self._stamp()
        if stamp == self.seen:
            return False
        try:
            self.ctx.load_cert_chain(str(self.cert), str(self.key))
            if self.client_ca is not None:
                self.ctx.load_verify_locations(cafile=str(self.client_ca))
            if self.client_crl is not None:
                self.ctx.load_verify_locations(cafile=str(self.client_crl))
        except (OSError, ssl.SSLError) as exc:
            log.error("TLS reload failed; still serving the previous certificate", exc_info=exc)
            return False
        self.seen = stamp
        log.info("TLS certificate reloaded", extra={"cert": str(self.cert)})
        return True

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.check()


def client_name_guard(base: type[asyncio.Protocol], name: str) -> type[asyncio.Protocol]:
    """`base` (uvicorn's HTTP protocol) that drops a connection whose client certificate does not
    carry `name`. The CA check already happened in the handshake (CERT_REQUIRED)."""

    class ClientNameGuard(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            peer = transport.get_extra_info("peercert")
            if name not in names_of(peer):
                log.warning(
                    "client certificate name refused", extra={"names": sorted(names_of(peer))}
                )
                transport.abort()

    return ClientNameGuard


def header_deadline(base: type[asyncio.Protocol], seconds: float) -> type[asyncio.Protocol]:
    """`base` (uvicorn's httptools protocol) that closes a connection whose request headers are
    not complete `seconds` after it opened or after the request's first byte. uvicorn times out
    idle kept-alive connections itself but not a new connection that sends nothing or trickles
    its headers. The body has its own deadline in the app (WAFLOW_BODY_TIMEOUT_S)."""

    class HeaderDeadline(base):  # type: ignore[valid-type,misc]
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._deadline is None:
                loop = asyncio.get_running_loop()
                self._deadline = loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadline
