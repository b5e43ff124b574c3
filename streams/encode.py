"""Raw bytes to schema-checked, encoded outputs: the stream step shared by the worker and replay.

Pure apart from one log line per dead letter; no Kafka, no Faust.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from schemas import codec
from schemas.envelope import AppKey, signature_digest, signed_by
from schemas.errors import SchemaError
from streams.dead import dead_letter
from streams.errors import SignatureMismatch
from streams.normalize import normalize
from streams.policy import KEEP, Policy
from streams.records import DLQ, SCHEMA_OF, Output, RawMeta

log = logging.getLogger("waflow.streams")
# Kafka's default record limit is 1 MB (the broker's message.max.bytes, the producer's
# max_request_size); a typed record stays below it with room for its batch's overhead.
MAX_RECORD_BYTES = 900 * 1024
PAYLOAD_BYTES = 64 * 1024  # a dead letter's payload prefix (WAFLOW_DLQ_PAYLOAD_BYTES)


# (schema name, record) -> the record's bytes on its topic: the codec's single-object encoding,
# or the Confluent wire format (infra/core/confluent.py).
Encode = Callable[[str, dict[str, Any]], bytes]


def typed(
    body: bytes,
    meta: RawMeta,
    secrets: Sequence[AppKey] = (),
    payload_bytes: int = PAYLOAD_BYTES,
    encoder: Encode | None = None,
    policy: Policy = KEEP,
) -> list[tuple[Output, bytes]]:
    """normalize, with every output checked against its schema; the worker never stops on input.

    A record that does not fit its schema, or a bug the input triggers, becomes a dead letter
    carrying the raw bytes (at most `payload_bytes` of them: the raw record keeps them whole),
    so a fixed normalizer can replay it. A typed record over MAX_RECORD_BYTES becomes a dead
    letter too (`too_large`): no output is ever too large for Kafka to take. With `secrets`,
    the signature the ingress recorded is checked again first (defense in depth against writes
    to the raw topic that bypassed the ingress).
    """
    encode = encoder or codec().encode
    try:
        if secrets:
            digest = signature_digest(meta.signature)
            if digest is None or signed_by(body, digest, secrets) is None:
                raise SignatureMismatch("the recorded X-Hub-Signature-256 does not verify")
        outputs = []
        for out in normalize(body, meta):
            out = policy.apply(out)
            if out.kind != DLQ:
                value = encode(SCHEMA_OF[out.kind], out.record)
                if len(value) <= MAX_RECORD_BYTES:
                    outputs.append((out, value))
                    continue
                out = policy.apply(too_large(out, len(value), body, meta))
            out = cut_payload(out, payload_bytes)
            log_dead(out)
            outputs.append((out, encode(SCHEMA_OF[DLQ], out.record)))
        return outputs
    except SignatureMismatch as exc:
        dead = dead_letter(meta, "signature", str(exc), body, "")
    except SchemaError as exc:
        dead = dead_letter(meta, "schema", str(exc), body, "")
    except Exception as exc:  # a normalizer bug must not stop the partition
        log.exception("normalize failed", extra={"request_id": meta.request_id})
        dead = dead_letter(meta, "internal_error", repr(exc), body, "")
    dead = cut_payload(policy.apply(dead), payload_bytes)
    log_dead(dead)
    return [(dead, encode(SCHEMA_OF[DLQ], dead.record))]


def too_large(out: Output, size: int, body: bytes, meta: RawMeta) -> Output:
    """The dead letter of a typed record too large for a Kafka record."""
    lineage = out.record["lineage"]
    path = f"{lineage['entry_index']}.{lineage['change_index']}"
    if lineage["item_index"] >= 0:
        path += f".{lineage['item_index']}"
    error = (
        f"a {SCHEMA_OF[out.kind]} record of {size} bytes is over the "
        f"{MAX_RECORD_BYTES}-byte record limit"
    )
    return dead_letter(meta, "too_large", error, body, path, out.record.get("waba_id"))


def cut_payload(dead: Output, limit: int) -> Output:
    """A dead letter keeps at most `limit` bytes of its payload and says where the rest is."""
    record = dead.record
    payload: bytes = record["payload"]
    if len(payload) <= limit:
        return dead
    where = f"{record['source_topic']}/{record['source_partition']}/{record['source_offset']}"
    note = f" (payload cut to {limit} of {len(payload)} bytes; raw record {where} has it whole)"
    cut = {**record, "payload": payload[:limit], "error": record["error"] + note}
    return Output(dead.kind, dead.key, dead.dedup_id, cut)


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
