"""Read waflow's typed topics from Python with nothing of waflow: confluent-kafka's consumer and
fastavro. The writer schemas come from the schemas topic; each record is read with the newest
version of its schema (Avro schema resolution). Prints one JSON line per record: topic, key,
schema name and the record (timestamps as epoch milliseconds, bytes as base64).

    python consume.py BOOTSTRAP SCHEMAS_TOPIC TOPIC [TOPIC ...]

Reads each topic from the beginning to its end offset at start, then exits. docs/consumers.md
explains the format; a long-running consumer keeps the schema map and polls on.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from datetime import datetime
from io import BytesIO
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from fastavro import parse_schema, schemaless_reader

MARKER = b"\xc3\x01"  # Avro single-object encoding


def read_all(bootstrap: str, topics: list[str]) -> list[Any]:
    """Every record of `topics`, from the beginning to the end offsets read at start."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "waflow-example",  # never committed: assign() and no auto commit
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=30).topics[topic]
            partitions += [TopicPartition(topic, p, 0) for p in meta.partitions]
        ends = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=30)[1]
            for tp in partitions
        }
        consumer.assign(partitions)
        left = {k for k, end in ends.items() if end > 0}
        out = []
        deadline = time.monotonic() + 120
        while left:
            if time.monotonic() > deadline:
                raise SystemExit(f"topics did not reach their end offsets: {sorted(left)}")
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error():
                    raise SystemExit(f"consumer error: {msg.error()}")
                out.append(msg)
                where = (str(msg.topic()), int(msg.partition() or 0))
                if int(msg.offset() or 0) + 1 >= ends[where]:
                    left.discard(where)
        return out
    finally:
        consumer.close()


def plain(value: Any) -> Any:
    """A decoded value as JSON: timestamps as epoch ms, bytes as base64."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def main(bootstrap: str, schemas_topic: str, topics: list[str]) -> None:
    writers: dict[bytes, Any] = {}  # fingerprint -> parsed writer schema
    newest: dict[str, tuple[int, Any]] = {}  # name -> (version, parsed reader schema)
    for msg in read_all(bootstrap, [schemas_topic]):
        entry = json.loads(msg.value())
        parsed = parse_schema(entry["schema"])
        writers[bytes.fromhex(entry["fingerprint"])] = (entry["name"], parsed)
        if entry["version"] >= newest.get(entry["name"], (0, None))[0]:
            newest[entry["name"]] = (entry["version"], parsed)
    for msg in read_all(bootstrap, topics):
        value = msg.value()
        if value[:2] != MARKER or value[2:10] not in writers:
            raise SystemExit(f"{msg.topic()}/{msg.offset()}: not a record of a known schema")
        name, writer = writers[value[2:10]]
        record = schemaless_reader(BytesIO(value[10:]), writer, newest[name][1])
        key = msg.key()
        line = {
            "topic": msg.topic(),
            "key": None if key is None else key.decode(),
            "name": name,
            "writer_fingerprint": value[2:10].hex(),
            "record": plain(record),
        }
        print(json.dumps(line, ensure_ascii=False))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
