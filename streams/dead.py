"""Dead letters: what could not be typed, with its reason and where it came from."""

from __future__ import annotations

from streams.records import DLQ, Output, RawMeta


def dead_letter(
    meta: RawMeta, reason: str, error: str, payload: bytes, path: str, waba_id: str | None = None
) -> Output:
    dead_id = f"{meta.topic}/{meta.partition}/{meta.offset}/{path}"
    record = {
        "dead_letter_id": dead_id,
        "stage": "streams",
        "reason": reason,
        "error": error[:1000],
        "payload": payload,
        "source_topic": meta.topic,
        "source_partition": meta.partition,
        "source_offset": meta.offset,
        "waba_id": waba_id,
        "request_id": meta.request_id or None,
        "failed_at": meta.received_ms,
        "app": meta.app or None,
    }
    return Output(DLQ, (waba_id or "").encode(), dead_id, record)
