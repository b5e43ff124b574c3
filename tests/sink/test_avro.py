from __future__ import annotations

from io import BytesIO

from fastavro import reader

from infra.control.loadgen import Generator
from schemas import codec
from sink import avro
from sink.rows import TIME_MAX, TIME_MIN
from streams.normalize import normalize
from streams.records import SCHEMA_OF, RawMeta

META = RawMeta("waflow.webhooks.raw", 0, 1, 1_700_000_000_000, "r")


def test_a_container_of_bodies_reads_back_as_the_records() -> None:
    gen = Generator(seed=3, wabas=3, run="avro")
    bodies = [gen.delivery(1_700_000_000, max_items=30).body for _ in range(40)]
    outputs = [o for body in bodies for o in normalize(body, META)]
    encoded = [codec().encode(SCHEMA_OF[o.kind], o.record) for o in outputs]
    for name in ("FlowResponse", "FlowEvent", "WebhookChange"):
        values = [v for v in encoded if v[:10] == codec().headers[name]] * 2
        assert values, name
        data = avro.container(codec().headers[name][2:], [v[10:] for v in values])
        assert list(reader(BytesIO(data))) == [codec().decode(v)[1] for v in values]


def test_the_statement_checks_what_the_python_rows_check() -> None:
    sql = avro.insert("db", "FlowResponse", "/tmp/x.avro", "t:0:1-2")
    # Both timestamps in DateTime64's range, read as integers so nothing wraps silently.
    lo, hi = (int(t.timestamp() * 1000) for t in (TIME_MIN, TIME_MAX))
    assert f"`responded_at` BETWEEN {lo} AND {hi}" in sql
    assert "`received_at` BETWEEN" in sql
    assert "`lineage`.`raw_offset` >= 0" in sql
    assert "`responded_at` Int64" in sql
    assert "insert_deduplication_token = 't:0:1-2'" in sql
    assert "LIMIT 1 BY `message_id`" in sql


def test_a_token_cannot_leave_its_string() -> None:
    sql = avro.insert("db", "WebhookChange", "/tmp/x.avro", "it's")
    assert "insert_deduplication_token = 'it\\'s'" in sql
