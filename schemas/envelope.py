"""The raw record: the contract between the ingress and everything that reads the raw topic.

The record's value is the exact bytes the platform POSTed; its key is the first entry's id; its
headers are named here, once. The signature scheme (HMAC-SHA256 of the exact bytes, hex, after
`sha256=`) is part of the contract: the ingress checks it, and the stream worker can check it
again (WAFLOW_STREAMS_VERIFY). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# Headers of a raw record, written by the ingress.
SIGNATURE = "x-hub-signature-256"
RECEIVED_MS = "waflow-received-ms"
APP = "waflow-app"  # the label of the app whose secret verified the body (never the secret)
REQUEST_ID = "waflow-request-id"
CONTENT_TYPE = "content-type"
CLIENT_ADDR = "waflow-client-addr"
TLS_CLIENT = "waflow-tls-client"
# Headers of records waflow writes after the raw topic.
REPLAY = "waflow-replay"  # the run id of `waflow replay` on every record it wrote

PREFIX = "sha256="
_HEX = re.compile(r"[0-9a-fA-F]{64}")


class AppKey(Protocol):
    """A Meta app's secret with the label recorded instead of it."""

    @property
    def label(self) -> str: ...

    @property
    def secret(self) -> bytes: ...


def signature_digest(header: str | None) -> bytes | None:
    """The 32-byte digest of an X-Hub-Signature-256 value; None when missing or malformed."""
    if not header or not header.startswith(PREFIX) or not _HEX.fullmatch(header, len(PREFIX)):
        return None
    return bytes.fromhex(header[len(PREFIX) :])


def signed_by(body: bytes, digest: bytes, keys: Sequence[AppKey]) -> str | None:
    """The label of the app whose secret gives `digest` over `body`, or None. Every secret is
    checked, not only until the first match, so timing does not tell which one matched."""
    matched: str | None = None
    for key in keys:
        expected = hmac.new(key.secret, body, hashlib.sha256).digest()
        if hmac.compare_digest(expected, digest) and matched is None:
            matched = key.label
    return matched


def sign(body: bytes, secret: bytes) -> str:
    """The header value the platform would send (the demo, load generator and tests use it)."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class RawMeta:
    """Where a raw record sits and what the ingress recorded with it."""

    topic: str
    partition: int
    offset: int
    received_ms: int
    request_id: str
    signature: str = ""  # the ingress's X-Hub-Signature-256, for the optional re-verify
    app: str = ""  # the label of the app whose secret verified the body ("" when unknown)

    @classmethod
    def of(
        cls, topic: str, partition: int, offset: int, timestamp_ms: int, headers: dict[str, bytes]
    ) -> RawMeta:
        """From a raw record's position and the headers the ingress wrote. A missing or
        malformed receive time falls back to the Kafka timestamp, never to a crash."""
        try:
            received = int(headers.get(RECEIVED_MS) or timestamp_ms)
        except ValueError:
            received = timestamp_ms
        return cls(
            topic,
            partition,
            offset,
            received,
            headers.get(REQUEST_ID, b"").decode(errors="replace"),
            headers.get(SIGNATURE, b"").decode(errors="replace"),
            headers.get(APP, b"").decode(errors="replace"),
        )
