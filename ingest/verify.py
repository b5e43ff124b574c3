"""The webhook core: pure functions of bytes and settings, no I/O (like gidgethub's sansio).

The signature is an HMAC-SHA256 of the exact bytes received: never of re-serialized JSON, which
changes escapes (`\\u00e9` vs `é`, `\\/`) and so fails for every accented name.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence

from infra.core.settings import AppSecret
from ingest.errors import HandshakeError, SignatureError
from schemas.envelope import sign, signature_digest, signed_by

__all__ = ["partition_key", "sign", "verify_digest", "verify_handshake", "verify_signature"]
# The platform writes each entry as {"id": "<waba id>", ...}: a bounded look at the start of
# the body finds the partition key without parsing the whole delivery.


def header_digest(header: str | None) -> bytes:
    """The digest an X-Hub-Signature-256 header carries; SignatureError when the header is
    missing or malformed. Needs no body, so the ingress checks it before reading one."""
    if not header:
        raise SignatureError("missing X-Hub-Signature-256")
    digest = signature_digest(header)
    if digest is None:
        raise SignatureError("malformed X-Hub-Signature-256")
    return digest


def verify_signature(body: bytes, header: str | None, secrets: Sequence[AppSecret]) -> str:
    """Return the label of the app whose secret signed `body`; raise SignatureError otherwise."""
    return verify_digest(body, header_digest(header), secrets)


def verify_digest(body: bytes, received: bytes, secrets: Sequence[AppSecret]) -> str:
    """Return the label of the app whose secret gives `received` over `body`."""
    matched = signed_by(body, received, secrets)
    if matched is None:
        raise SignatureError("signature does not match")
    return matched


def verify_handshake(params: Mapping[str, str], verify_token: str) -> str:
    """Return hub.challenge when mode and token are right; raise HandshakeError otherwise."""
    token = params.get("hub.verify_token", "").encode()
    if params.get("hub.mode") != "subscribe" or not verify_token:
        raise HandshakeError("not a subscribe handshake")
    if not hmac.compare_digest(token, verify_token.encode()):
        raise HandshakeError("verify token does not match")
    return params.get("hub.challenge", "")


def partition_key(digest: bytes) -> bytes:
    """The raw record's key: the body's verified HMAC-SHA-256 (already computed), so deliveries
    spread evenly over the raw partitions whatever their WABA, and one busy WABA is not one
    busy partition and one busy worker. A redelivery of the same body gets the same key.
    Nothing downstream needs deliveries of a WABA in order: items are placed by their own id
    (streams/items.py), and the views order events by their time."""
    return digest.hex()[:32].encode()
