"""The sink's writer and the views against the real embedded ClickHouse engine."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import orjson
from clickhouse_connect.driver.client import Client

from infra.control.loadgen import Generator
from infra.core.clickhouse import connect, ddl, migrate
from schemas import codec
from sink.batch import Consumed, cut
from sink.load import RowWriter
from sink.rows import TABLES
from sink.writer import ClickHouseWriter, Engine
from streams.normalize import normalize
from streams.records import SCHEMA_OF, RawMeta

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def consumed(topic: str, first_offset: int, bodies: list[bytes]) -> list[Consumed]:
    out = []
    for i, body in enumerate(bodies):
        for o in normalize(body, RawMeta("raw", 0, first_offset + i, 1_700_000_000_000, "r")):
            out.append(
                Consumed(topic, 0, first_offset + i, codec().encode(SCHEMA_OF[o.kind], o.record))
            )
    return out


async def test_migrations_are_idempotent_and_batches_exactly_once(
    chdb_url: str, payloads: dict[str, bytes]
) -> None:
    client = connect(chdb_url)
    assert migrate(client, "waflow") == [
        "0001_tables", "0002_views", "0003_schema_v2", "0004_analytics", "0005_cleanup"
    ]  # fmt: skip
    assert migrate(client, "waflow") == []
    engine = Engine(client, "waflow")
    writer = ClickHouseWriter(engine)
    records = consumed("waflow.flows.events", 0, list(payloads.values()))
    for batch in cut(records, NOW).batches:
        assert await writer.write(batch) > 0
        assert await writer.write(batch) == 0  # a retried batch creates nothing
    # The same keys at other offsets (a crashed stream worker wrote them twice): nothing new.
    for batch in cut(consumed("waflow.flows.events", 100, list(payloads.values())), NOW).batches:
        assert await writer.write(batch) == 0
    _, rows = await engine.select("SELECT count(), uniqExact(event_id) FROM waflow.flow_events")
    assert rows == [[6, 6]]
    _, rows = await engine.select(
        "SELECT count(), uniqExact(message_id), any(contact_name), any(response['optional_param1'])"
        " FROM waflow.flow_responses"
    )
    assert rows == [[1, 1, "Sheena Nelson", "<value1>"]]
    engine.close()


async def test_the_engine_and_python_write_the_same_rows(chdb_url: str) -> None:
    """The contract between the two decoders: one set of records, loaded by the engine into one
    database and by Python into another, gives identical tables (and the engine dedups too)."""
    client = connect(chdb_url)
    gen = Generator(seed=11, wabas=5, run="same")
    bodies = [gen.delivery(1_700_000_000 + i, max_items=30).body for i in range(300)]
    records = consumed("typed", 0, bodies)
    records += records[:50]  # copies at the same offsets, as a re-read batch brings them
    engine_db, python_db = Engine(client, "by_engine", embedded=True), Engine(client, "by_python")
    for engine, in_engine in ((engine_db, True), (python_db, False)):
        migrate(client, engine.database)
        writer = ClickHouseWriter(engine)
        batches = cut(records, NOW, in_engine=in_engine).batches
        assert all((b.avro is not None) == in_engine for b in batches)
        assert sum([await writer.write(b) for b in batches]) == len(records) - 50
        assert sum([await writer.write(b) for b in batches]) == 0  # a retried batch: nothing
    for table in ("flow_responses", "flow_events", "webhook_changes"):
        [key] = [t.id_column for t in TABLES.values() if t.name == table]
        sql = f"SELECT * EXCEPT inserted_at FROM {{db}}.{table} ORDER BY {key} FORMAT JSONEachRow"
        by_engine = client.command(sql.format(db="by_engine"))
        assert by_engine and by_engine == client.command(sql.format(db="by_python")), table


def event(flow: str, name: str, t: int, state: str | None = None, status: str | None = None):
    value = {"event": name, "flow_id": flow, "message": "m"}
    if state:
        value |= {"alert_state": state, "threshold": 10, "error_rate": 12.5}
    if status:
        value |= {"new_status": status}
    return orjson.dumps(
        {"entry": [{"id": "w1", "time": t, "changes": [{"field": "flows", "value": value}]}]}
    )


async def test_views_on_a_fixed_data_set(chdb_url: str) -> None:
    client = connect(chdb_url)
    migrate(client, "waflow")
    engine = Engine(client, "waflow")
    bodies = [
        event("f1", "FLOW_STATUS_CHANGE", 1000, status="DRAFT"),
        event("f1", "FLOW_STATUS_CHANGE", 2000, status="PUBLISHED"),
        event("f1", "ENDPOINT_LATENCY", 3000, state="ACTIVATED"),
        event("f1", "ENDPOINT_LATENCY", 3600, state="DEACTIVATED"),
        event("f1", "CLIENT_ERROR_RATE", 4000, state="ACTIVATED"),
        event("f2", "FLOW_STATUS_CHANGE", 1500, status="BLOCKED"),
    ]
    for batch in cut(consumed("waflow.flows.events", 0, bodies), NOW).batches:
        await ClickHouseWriter(engine).write(batch)
    _, status = await engine.select(
        "SELECT flow_id, status FROM waflow.flow_status_current ORDER BY flow_id"
    )
    assert status == [["f1", "PUBLISHED"], ["f2", "BLOCKED"]]
    _, active = await engine.select(
        "SELECT flow_id, alert, toUnixTimestamp(since) FROM waflow.flow_alerts_active"
    )
    assert active == [["f1", "CLIENT_ERROR_RATE", 4000]]
    _, timeline = await engine.select(
        "SELECT alert, alert_state, duration_s FROM waflow.flow_alert_timeline ORDER BY started_at"
    )
    assert timeline == [
        ["ENDPOINT_LATENCY", "ACTIVATED", 600],
        ["ENDPOINT_LATENCY", "DEACTIVATED", None],
        ["CLIENT_ERROR_RATE", "ACTIVATED", None],
    ]
    engine.close()


def test_the_engine_parses_every_cluster_statement(chdb_url: str) -> None:
    # No cluster can run here; the real engine's parser still checks every statement we would
    # send to one (EXPLAIN AST parses without executing).
    client = connect(chdb_url)
    for statement in ddl("waflow", "main"):
        assert client.query(f"EXPLAIN AST {statement}").result_rows, statement


def test_every_table_drops_merged_away_parts_within_30_s(chdb_url: str) -> None:
    """Left at ClickHouse's 300 s, merged-away parts held about 35 MB of the sink's memory at
    375 deliveries/s (infra/migrations/0005_cleanup.sql); a new table must set it too."""
    client = connect(chdb_url)
    migrate(client, "waflow")
    tables = client.query(
        "SELECT name, engine_full FROM system.tables WHERE database = 'waflow' "
        "AND engine LIKE '%MergeTree' AND name != 'schema_migrations'"
    ).result_rows
    assert {name for name, _ in tables} >= {"flow_responses", "dead_letters", "flow_sends"}
    for name, engine in tables:
        assert "max_cleanup_delay_period = 30" in engine, name


def test_every_catalog_column_is_a_column_of_its_table(chdb_url: str) -> None:
    """The catalog's columns come from the .avsc files; the tables from the migrations."""
    from schemas.catalog import KINDS, columns

    client = connect(chdb_url)
    migrate(client, "waflow")
    for kind in KINDS:
        have = {row[0] for row in client.query(f"DESCRIBE TABLE waflow.{kind.table}").result_rows}
        wanted = {c.name for c in columns(kind.schema)}
        assert wanted <= have, (kind.table, wanted - have)


async def test_a_row_the_engine_refuses_for_good_is_a_dead_letter_not_a_stall(
    chdb_client: Client, payloads: dict[str, bytes]
) -> None:
    """A value its column cannot hold (here a response time that is no time) is refused by
    the real engine for good: the batch is split down to it, it becomes a dead letter naming
    its record, and every other row loads. Retrying it would stall the partition forever."""
    migrate(chdb_client, "waflow")
    engine = Engine(chdb_client, "waflow")
    gen = Generator(seed=12, wabas=2, run="refuse")
    bodies = [gen.delivery(1_700_000_000 + i, max_items=1).body for i in range(40)]
    records = [
        r for r in consumed("typed", 0, bodies) if r.value[:10] == codec().headers["FlowResponse"]
    ]
    [batch] = [b for b in cut(records, NOW).batches if b.table == "flow_responses"]
    at = batch.columns.index("responded_at")
    bad_key, bad_row = batch.rows[3]
    rows = list(batch.rows)
    rows[3] = (bad_key, [*bad_row[:at], "no time", *bad_row[at + 1 :]])
    loaded = await RowWriter(ClickHouseWriter(engine)).write(
        dataclasses.replace(batch, rows=rows), NOW
    )
    assert loaded.dead == {"rejected": 1}
    assert loaded.inserted["flow_responses"] == len(rows) - 1
    _, dead = await engine.select("SELECT reason, source_offset, error FROM waflow.dead_letters")
    assert dead[0][:2] == ["rejected", batch.origins[3].offset] and bad_key in dead[0][2]
