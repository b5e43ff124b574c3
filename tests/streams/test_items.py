import pytest

from infra.core.topics import partition_for as home
from schemas.errors import DecodeError
from streams.items import Item, pack, unpack
from streams.records import EVENTS, RESPONSES, Output


def output(i: int, kind: str = RESPONSES, size: int = 10) -> tuple[Output, bytes]:
    return Output(kind, f"waba{i % 3}".encode(), f"wamid.{i}", {}), bytes([i % 256]) * size


def test_pack_then_unpack_gives_every_item_back_on_its_home() -> None:
    outputs = [output(i, RESPONSES if i % 2 else EVENTS) for i in range(100)]
    found: list[Item] = []
    for partition, value in pack(outputs, 4):
        items = unpack(value, {}, None)
        assert {home(item.dedup_id.encode(), 4) for item in items} == {partition}
        found += items
    assert sorted(found, key=lambda i: i.dedup_id) == sorted(
        (Item(o.dedup_id, o.kind, o.key, v) for o, v in outputs), key=lambda i: i.dedup_id
    )


def test_batches_are_cut_below_the_size_kafka_accepts() -> None:
    outputs = [output(i, size=1000) for i in range(300)]
    batches = pack(outputs, 1, max_bytes=64 * 1024)
    assert len(batches) > 4
    assert all(len(value) < 64 * 1024 + 100 for _, value in batches)
    assert sum(len(unpack(v, {}, None)) for _, v in batches) == 300


def test_a_record_of_the_one_item_format_still_reads() -> None:
    headers = {"waflow-kind": b"events", "waflow-key": b"waba1"}
    assert unpack(b"avro", headers, b"id-1") == [Item("id-1", EVENTS, b"waba1", b"avro")]


@pytest.mark.parametrize("value", [b"\xff not ours", b"", b"\xc3\x01" + b"\x00" * 8])
def test_a_record_waflow_did_not_write_is_a_decode_error(value: bytes) -> None:
    with pytest.raises(DecodeError):
        unpack(value, {}, b"\xfe")
