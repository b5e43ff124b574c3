"""The business's flow sends: JSON records to flow_sends rows; anything else a dead letter."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from sink.batch import Consumed
from sink.errors import RowError
from sink.sends import cut_sends, send_row

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_send_by_message_and_one_by_token() -> None:
    _, row = send_row(b'{"flow_id": 12, "message_id": "wamid.1", "sent_at": 1767225600}')
    assert row[1:] == ["12", "wamid.1", None, None, datetime(2026, 1, 1, tzinfo=UTC)]
    _, row = send_row(b'{"flow_id": "9", "flow_token": "t", "sent_at": "2026-01-01T10:00"}')
    assert row[3] == "t" and row[5] == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_the_same_send_twice_is_one_id() -> None:
    one = send_row(b'{"flow_id": "1", "message_id": "m", "sent_at": 1}')[0]
    assert one == send_row(b'{"sent_at": 2, "message_id": "m", "flow_id": "1"}')[0]
    assert one != send_row(b'{"flow_id": "2", "message_id": "m", "sent_at": 1}')[0]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (b"{nope", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"message_id": "m", "sent_at": 1}', "flow_id is missing"),
        (b'{"flow_id": "1", "sent_at": 1}', "neither message_id nor flow_token"),
        (b'{"flow_id": "1", "message_id": "m"}', "sent_at is missing"),
        (b'{"flow_id": "1", "message_id": "m", "sent_at": "soon"}', "not a time"),
        (b'{"flow_id": "1", "message_id": "m", "sent_at": 1e15}', "not a time|out of range"),
        (b'{"flow_id": ["1"], "message_id": "m", "sent_at": 1}', "expected a string"),
    ],
)
def test_what_is_not_a_send_says_why(value: bytes, error: str) -> None:
    with pytest.raises(RowError, match=error) as caught:
        send_row(value)
    assert caught.value.reason == "bad_flow_send"


def test_a_bad_record_is_a_dead_letter_and_its_neighbours_load() -> None:
    good = orjson.dumps({"flow_id": "1", "message_id": "m", "sent_at": 1767225600})
    records = [Consumed("s", 0, 1, good), Consumed("s", 0, 2, b"{"), Consumed("s", 0, 3, good)]
    cut = cut_sends(records, NOW)
    assert cut.dead_reasons == {"bad_flow_send": 1}
    sends, dead = cut.batches
    assert (sends.table, len(sends.rows), dead.table, len(dead.rows)) == (
        "flow_sends", 1, "dead_letters", 1,
    )  # fmt: skip
    assert sends.token == "sends:s:0:1-3"
