"""Log lines: JSON, personal data masked, business ids and numbers kept."""

from __future__ import annotations

import json
import logging

from infra.core.logs import JsonFormatter, mask


def line(msg: str, exc: BaseException | None = None, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("waflow.test", logging.WARNING, __file__, 1, msg, (), None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    record.__dict__.update(extra)
    out: dict[str, object] = json.loads(JsonFormatter().format(record))
    return out


def test_phone_numbers_are_masked_in_every_form() -> None:
    for phone in ("16505551234", "+1 650-555-1234", "+44 (20) 7946 0958", "491701234567"):
        masked = mask(f"user {phone} answered")
        assert phone not in masked and "***" in masked, masked
        assert masked.startswith("user ") and masked.endswith(" answered")


def test_ids_that_are_not_phone_numbers_survive() -> None:
    text = "request 3f2a9c1234567890abcdef topic waflow.flows.responses offset=12 partition 3"
    assert mask(text) == text


def test_names_and_user_text_are_masked_wherever_a_payload_fragment_is_quoted() -> None:
    text = """bad record {"profile": {"name": "Ana María"}, "wa_id": "16505551234", "body": "hi"}"""
    masked = mask(text)
    for personal in ("Ana María", "16505551234", '"hi"'):
        assert personal not in masked


def test_a_log_line_masks_message_extras_and_exception_but_keeps_ids() -> None:
    try:
        raise ValueError("'Ana' is not a valid name='Ana' for wa_id=16505551234")
    except ValueError as exc:
        out = line(
            "dead letter for +1 650 555 1234",
            exc,
            request_id="9f1e2d3c4b5a69788796a5b4c3d2e1f0",
            waba_id="102290129340398",
            raw_offset=123456789,
            contact_name="Ana",
            reason="field from=16505551234 invalid",
        )
    text = json.dumps(out, ensure_ascii=False)
    assert "16505551234" not in text and "650 555 1234" not in text and "'Ana'" not in text
    assert out["contact_name"] == "***"
    assert out["request_id"] == "9f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert out["waba_id"] == "102290129340398"  # business ids stay searchable
    assert out["raw_offset"] == 123456789  # numbers in extras are not text


def test_uvicorns_coloured_copy_of_the_message_is_left_out() -> None:
    out = line("Finished server process [1]", color_message="Finished \x1b[36m%d\x1b[0m")
    assert "color_message" not in out and out["msg"] == "Finished server process [1]"
