import hashlib
import hmac

import pytest

from infra.core.settings import parse_app_secrets
from ingest.errors import HandshakeError, SignatureError
from ingest.verify import (
    header_digest,
    partition_key,
    sign,
    verify_handshake,
    verify_signature,
)

SECRETS = parse_app_secrets("shop=shop-secret,support=support-secret")


def test_signature_of_exact_bytes_with_unicode_and_escapes() -> None:
    # The same text as escaped unicode and as raw UTF-8: each verifies only over its own bytes.
    escaped = b'{"name":"Jos\\u00e9 \\/ @home"}'
    raw = '{"name":"José / @home"}'.encode()
    for body in (escaped, raw):
        header = "sha256=" + hmac.new(b"shop-secret", body, hashlib.sha256).hexdigest()
        assert verify_signature(body, header, SECRETS) == "shop"
    with pytest.raises(SignatureError):
        verify_signature(raw, sign(escaped, b"shop-secret"), SECRETS)


def test_second_app_is_accepted_and_labelled() -> None:
    assert verify_signature(b"{}", sign(b"{}", b"support-secret"), SECRETS) == "support"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha1=abc",
        "sha256=xyz",
        "sha256=" + "0" * 63,
        "sha256=" + "0" * 64,
        "SHA256=" + "0" * 64,
    ],
)
def test_missing_malformed_or_wrong_signature(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify_signature(b"{}", header, SECRETS)


def test_uppercase_hex_digest_is_accepted() -> None:
    assert (
        verify_signature(
            b"{}", sign(b"{}", b"shop-secret").upper().replace("SHA256", "sha256"), SECRETS
        )
        == "shop"
    )


def test_handshake() -> None:
    ok = {"hub.mode": "subscribe", "hub.verify_token": "t", "hub.challenge": "1158201444"}
    assert verify_handshake(ok, "t") == "1158201444"
    with pytest.raises(HandshakeError):
        verify_handshake({**ok, "hub.verify_token": "wrong"}, "t")
    with pytest.raises(HandshakeError):
        verify_handshake({**ok, "hub.mode": "unsubscribe"}, "t")
    with pytest.raises(HandshakeError):
        verify_handshake(ok, "")


def test_the_partition_key_spreads_one_waba_over_every_partition(
    payloads: dict[str, bytes],
) -> None:
    """A WABA sending most deliveries is not one hot partition: the key is the body's digest."""
    from infra.control.loadgen import Generator
    from infra.core.topics import partition_for

    gen = Generator(seed=1, wabas=1, run="hot")  # every delivery from one WABA
    keys = [partition_key(header_digest(sign(gen.delivery(i).body, b"s"))) for i in range(600)]
    counts = [0] * 6
    for key in keys:
        counts[partition_for(key, 6)] += 1
    assert min(counts) > 600 / 6 * 0.7, counts
    body = payloads["flow_response.json"]
    again = partition_key(header_digest(sign(body, b"s")))
    assert again == partition_key(header_digest(sign(body, b"s")))  # a redelivery: same key


def test_signature_and_token_comparisons_are_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both secrets are compared with hmac.compare_digest, every secret each time."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    secrets = parse_app_secrets("a=one,b=two,c=three")
    body = b"{}"
    assert verify_signature(body, sign(body, b"one"), secrets) == "a"
    assert len(calls) == 3  # no early exit on the first match: timing does not tell which
    calls.clear()
    with pytest.raises(HandshakeError):
        verify_handshake({"hub.mode": "subscribe", "hub.verify_token": "x"}, "t")
    assert calls == [(b"x", b"t")]
