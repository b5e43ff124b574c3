"""The internal items topic: typed items bundled per dedup partition.

`normalize` could write one items-topic record per item, keyed by its dedup id, and let Kafka's
partitioner place it. It writes one `ItemBatch` per partition and batch instead, placed where
that partitioner would have put each id (murmur2 of the id). The dedup step then pays Kafka's
and Faust's per-record cost once per batch; that cost, twice per item, was most of the stream
stage's CPU. The placement is unchanged, so claims written before this format stay on the
partition that looks them up.

Pure: bytes in, bytes out; no Kafka, no Faust.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from infra.core.topics import partition_for
from schemas import codec
from schemas.errors import DecodeError
from streams.records import Output, kind_of

# Kafka refuses records over 1 MB by default (broker message.max.bytes, producer
# max_request_size); batches are cut well below it.
MAX_BATCH_BYTES = 512 * 1024
ITEM_OVERHEAD = 16  # Avro length prefixes and the enum, per item


@dataclass(frozen=True)
class Item:
    """One typed item on its way to dedup: where it goes and what it is."""

    dedup_id: str
    kind: str
    key: bytes
    value: bytes


def pack(
    outputs: Iterable[tuple[Output, bytes]], partitions: int, max_bytes: int = MAX_BATCH_BYTES
) -> list[tuple[int, bytes]]:
    """(partition, encoded ItemBatch) for typed outputs, at most `max_bytes` of items each."""
    open_: dict[int, tuple[list[dict[str, object]], int]] = {}
    done: list[tuple[int, list[dict[str, object]]]] = []
    for out, value in outputs:
        item: dict[str, object] = {
            "dedup_id": out.dedup_id,
            "kind": out.kind,
            "key": out.key,
            "value": value,
        }
        size = len(value) + len(out.key) + len(out.dedup_id) + ITEM_OVERHEAD
        p = partition_for(out.dedup_id.encode(), partitions)
        items, used = open_.get(p, ([], 0))
        if items and used + size > max_bytes:
            done.append((p, items))
            items, used = [], 0
        items.append(item)
        open_[p] = (items, used + size)
    done.extend((p, items) for p, (items, _) in open_.items())
    encode = codec().encode
    return [(p, encode("ItemBatch", {"items": items})) for p, items in done]


def unpack(value: bytes, headers: dict[str, bytes], key: bytes | None) -> list[Item]:
    """The items of one items-topic record. A record of the earlier one-item format (a
    `waflow-kind` header) still reads, so a rolling upgrade loses nothing in flight.

    Raises DecodeError for a record waflow did not write.
    """
    kind = kind_of(headers)
    if kind is not None:
        dedup_id = (key or b"").decode(errors="replace")
        return [Item(dedup_id, kind, headers.get("waflow-key", b""), value)]
    name, record = codec().decode(value)
    if name != "ItemBatch":
        raise DecodeError(f"a {name} record, not an ItemBatch")
    return [Item(i["dedup_id"], i["kind"], i["key"], i["value"]) for i in record["items"]]
