from __future__ import annotations

from pathlib import Path

import pytest

from schemas import SINGLE_OBJECT_MARKER, codec
from schemas.errors import DecodeError, EncodeError
from streams.normalize import normalize
from streams.records import SCHEMA_OF, RawMeta

FIXTURES = Path(__file__).parent / "fixtures"
META = RawMeta("waflow.webhooks.raw", 0, 1, 1_700_000_000_000, "r")


def test_round_trip_every_sample(payloads: dict[str, bytes]) -> None:
    for body in payloads.values():
        for out in normalize(body, META):
            data = codec().encode(SCHEMA_OF[out.kind], out.record)
            assert data.startswith(SINGLE_OBJECT_MARKER)
            name, record = codec().decode(data)
            assert name == SCHEMA_OF[out.kind]
            assert record["lineage"] == out.record["lineage"]


def test_errors_are_ours() -> None:
    with pytest.raises(EncodeError):
        codec().encode("FlowEvent", {"event_id": 5})
    with pytest.raises(DecodeError):
        codec().decode(b"\xc3\x01" + b"\x00" * 8 + b"x")
    with pytest.raises(DecodeError):
        codec().decode(b"{}")


def test_records_written_by_every_committed_version_still_decode() -> None:
    """tests/schemas/fixtures holds records encoded by earlier schema versions (v1 = first)."""
    files = sorted(FIXTURES.glob("*.bin"))
    assert files, "no schema fixtures"
    for path in files:
        name, _record = codec().decode(path.read_bytes())
        assert name == path.name.split(".")[0]
