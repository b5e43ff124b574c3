"""Structured logs: one JSON object per line, with phone numbers and names masked.

Callers pass fields, never secrets or bodies. Masking is the second line: an exception text or
a reason string may quote a piece of a payload, and a WhatsApp user's phone number (`wa_id`,
`from`) or profile name must not reach a log store. Business ids (WABA, phone number id, flow
id, request id) stay readable: operators search logs by them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

# uvicorn adds `color_message`, the same text with terminal colour codes: not for a log store.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "color_message",
}
MASK = "***"
# Seven or more digits, optionally with +, spaces, dots, dashes or brackets between them, not
# inside a longer word (so hex request ids and topic names survive).
_PHONE = re.compile(r"(?<![\w])\+?\d(?:[\s().-]?\d){6,}(?![\w])")
_NAMED = re.compile(
    r"""(?ix)
    (["']?(?:[a-z_]*name|wa_id|from|phone|display_phone_number|body|input)["']?\s*[:=]\s*)
    ("[^"]*"|'[^']*'|[^\s,}]+)
    """
)
# An exception's text may quote any value it choked on, without a key to recognise it by.
_QUOTED = re.compile(r"'[^'\n]{1,200}'|\"[^\"\n]{1,200}\"")
# Extra fields whose whole value is personal, and ids that are never personal.
_PERSONAL_KEYS = {"wa_id", "from", "phone", "name", "contact_name", "profile_name", "body"}
_ID_KEYS = {"request_id", "waba_id", "phone_number_id", "flow_id", "app", "topic", "table"}


def mask(text: str) -> str:
    """`text` with phone-like digit runs and the values of name-like fields replaced."""
    text = _NAMED.sub(lambda m: m[1] + MASK, text)
    return _PHONE.sub(lambda m: MASK + m[0][-2:], text)


def _field(key: str, value: Any) -> Any:
    if key in _PERSONAL_KEYS:
        return MASK
    if isinstance(value, str) and key not in _ID_KEYS:
        return mask(value)
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = _field(key, value)
        if record.exc_info:
            out["exc"] = _QUOTED.sub(MASK, mask(self.formatException(record.exc_info)))
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's, faust's, aiokafka's) to JSON lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
