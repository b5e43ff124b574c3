"""Typed reads of JSON values that tolerate the platform's real variations and name the field
when a value cannot be read (numbers as strings, integers as floats, ids as numbers)."""

from __future__ import annotations

import math
from typing import Any

from streams.errors import PayloadError
from streams.records import RawMeta


def req_str(obj: dict[str, Any], name: str) -> str:
    value = opt_str(obj, name)
    if value is None or value == "":
        raise PayloadError("missing_field", f"{name} is missing")
    return value


def opt_str(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # ids sent as numbers keep their digits
    raise PayloadError("wrong_type", f"{name} is {type(value).__name__}, expected a string")


def opt_float(obj: dict[str, Any], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    number = _number(value, name)
    if not math.isfinite(number):
        raise PayloadError("wrong_type", f"{name} is not a finite number")
    return number


def as_seconds_ms(value: Any) -> int | None:
    """Epoch seconds (number or numeric string) as epoch milliseconds; None when absent."""
    if value is None:
        return None
    seconds = _number(value, "time")
    if not math.isfinite(seconds) or not 0 <= seconds < 2**33:
        raise PayloadError("bad_timestamp", f"timestamp {value!r} is out of range")
    return int(seconds * 1000)


def lineage(meta: RawMeta, entry: int, change: int, item: int) -> dict[str, Any]:
    return {
        "request_id": meta.request_id,
        "raw_partition": meta.partition,
        "raw_offset": meta.offset,
        "entry_index": entry,
        "change_index": change,
        "item_index": item,
    }


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise PayloadError("wrong_type", f"{name} is a boolean, expected a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError as exc:
            raise PayloadError("wrong_type", f"{name}={value[:40]!r} is not a number") from exc
    raise PayloadError("wrong_type", f"{name} is {type(value).__name__}, expected a number")
