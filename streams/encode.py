"""Raw bytes to schema-checked, encoded outputs: the stream step shared by the worker and replay.

Pure apart from one log line per dead letter; no Kafka, no Faust.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from schemas import codec
from schemas.envelope import AppKey, signature_digest, signed_by
from schemas.errors import SchemaError
from streams.dead import dead_letter
from streams.errors import SignatureMismatch
from streams.normalize import normalize
from streams.records import DLQ, SCHEMA_OF, Output, RawMeta

log = logging.getLogger("waflow.streams")


def typed(body: bytes, meta: RawMeta, secrets: Sequence[AppKey] = ()) -> list[tuple[Output, bytes]]:
    """normalize, with every output checked against its schema; the worker never stops on input.

    A record that does not fit its schema, or a bug the input triggers, becomes a dead letter
    carrying the raw bytes, so a fixed normalizer can replay it. With `secrets`, the signature
    the ingress recorded is checked again first (defense in depth against writes to the raw
    topic that bypassed the ingress).
    """
    encode = codec().encode
    try:
        if secrets:
            digest = signature_digest(meta.signature)
            if digest is None or signed_by(body, digest, secrets) is None:
                raise SignatureMismatch("the recorded X-Hub-Signature-256 does not verify")
        outputs = [(out, encode(SCHEMA_OF[out.kind], out.record)) for out in normalize(body, meta)]
        for out, _ in outputs:
            if out.kind == DLQ:
                log_dead(out)
        return outputs
    except SignatureMismatch as exc:
        dead = dead_letter(meta, "signature", str(exc), body, "")
    except SchemaError as exc:
        dead = dead_letter(meta, "schema", str(exc), body, "")
    except Exception as exc:  # a normalizer bug must not stop the partition
        log.exception("normalize failed", extra={"request_id": meta.request_id})
        dead = dead_letter(meta, "internal_error", repr(exc), body, "")
    log_dead(dead)
    return [(dead, encode(SCHEMA_OF[DLQ], dead.record))]


def log_dead(dead: Output) -> None:
    """One line per dead letter, with the request id that finds the delivery at the ingress."""
    record = dead.record
    log.warning(
        "dead letter",
        extra={
            "reason": record["reason"],
            "error": record["error"],
            "request_id": record["request_id"],
            "raw_partition": record["source_partition"],
            "raw_offset": record["source_offset"],
        },
    )
