"""Schema evolution end to end on the real engine: records written by every earlier schema
version land as rows beside current ones, decoded by the engine and by Python alike; and the
migrations bring a database of the previous release forward without losing a row."""

from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from clickhouse_connect.driver.client import Client
from fastavro import schemaless_writer

from infra.control.loadgen import Generator
from infra.core.clickhouse import migrate
from schemas.codec import SINGLE_OBJECT_MARKER, Version, codec
from sink.batch import Consumed, cut
from sink.rows import TABLES
from sink.writer import ClickHouseWriter, Engine
from streams.normalize import normalize
from streams.records import SCHEMA_OF, RawMeta

NOW = datetime(2026, 1, 1, tzinfo=UTC)
V2_COLUMNS = {"app", "user_id", "parent_user_id", "username", "flow_id", "message_json"}


def as_version(version: Version, record: dict[str, Any]) -> bytes:
    """`record` written by an earlier writer: its fields only, its types (v1 counts were longs)."""
    fields = {f["name"] for f in version.document["fields"]}
    old = {k: v for k, v in record.items() if k in fields}
    if version.version == 1 and version.name == "FlowEvent":
        if old["requests_count"] is not None:
            old["requests_count"] = round(old["requests_count"])
        old["errors"] = [
            {**e, "error_count": None if e["error_count"] is None else round(e["error_count"])}
            for e in old["errors"]
        ]
    out = BytesIO()
    schemaless_writer(out, version.parsed, old)
    return SINGLE_OBJECT_MARKER + version.fingerprint + out.getvalue()


def mixed_records() -> list[Consumed]:
    """Every other record written by version 1 of its schema, the rest by the current one."""
    gen = Generator(seed=5, wabas=4, run="evolve")
    v1 = {v.name: v for v in codec().versions if v.version == 1}
    out: list[Consumed] = []
    for i in range(200):
        meta = RawMeta("raw", 0, i, 1_700_000_000_000, "r", app="shop")
        for o in normalize(gen.delivery(1_700_000_000 + i, max_items=20).body, meta):
            name = SCHEMA_OF[o.kind]
            old = i % 2 == 0 and (name != "FlowResponse" or o.record["wa_id"] is not None)
            value = as_version(v1[name], o.record) if old else codec().encode(name, o.record)
            out.append(Consumed(f"typed.{name}", 0, len(out), value))
    return out


async def test_old_and_new_records_land_in_the_same_tables_on_both_paths(
    chdb_client: Client,
) -> None:
    client = chdb_client
    records = mixed_records()
    old = sum(1 for r in records if r.value[2:10] not in {h[2:] for h in codec().headers.values()})
    assert 0 < old < len(records)
    for database, in_engine in (("by_engine", True), ("by_python", False)):
        migrate(client, database)
        engine = Engine(client, database, embedded=in_engine)
        batches = cut(records, NOW, in_engine=in_engine).batches
        assert all((b.avro is not None) == in_engine for b in batches)
        written = sum([await ClickHouseWriter(engine).write(b) for b in batches])
        assert written == len(records)
    for table in ("flow_responses", "flow_events", "webhook_changes"):
        [key] = [t.id_column for t in TABLES.values() if t.name == table]
        sql = f"SELECT * EXCEPT inserted_at FROM {{db}}.{table} ORDER BY {key} FORMAT JSONEachRow"
        by_engine = client.command(sql.format(db="by_engine"))
        assert by_engine and by_engine == client.command(sql.format(db="by_python")), table
        # v1 rows have no app (the field is new in v2); v2 rows carry it.
        apps = client.query(f"SELECT app, count() FROM by_engine.{table} GROUP BY app").result_rows
        assert {a for a, _ in apps} == {None, "shop"}, (table, apps)


async def test_migrations_keep_every_row_of_the_previous_release(chdb_client: Client) -> None:
    """A database made by the previous release (migrations 0001-0002) with rows in it, then
    migrated: every row is still there, and new rows with the new columns load beside them."""
    client = chdb_client
    assert migrate(client, "old", upto=2) == ["0001_tables", "0002_views"]
    records = mixed_records()
    v1_only = [r for r in records if r.value[2:10] not in {h[2:] for h in codec().headers.values()}]
    before: dict[str, int] = {}
    for batch in cut(v1_only, NOW).batches:  # rows as the previous release wrote them
        keep = [i for i, c in enumerate(batch.columns) if c not in V2_COLUMNS]
        client.insert(
            f"old.{batch.table}",
            [[row[i] for i in keep] for _, row in batch.rows],
            [batch.columns[i] for i in keep],
        )
        before[batch.table] = before.get(batch.table, 0) + len(batch.rows)
    assert migrate(client, "old") == ["0003_schema_v2", "0004_analytics", "0005_cleanup"]
    for table, count in before.items():
        assert client.command(f"SELECT count() FROM old.{table}") == count, table
    engine = Engine(client, "old", embedded=True)
    for batch in cut(records, NOW, in_engine=True).batches:
        await ClickHouseWriter(engine).write(batch)  # the v1 ids are skipped, the rest load
    total = client.command("SELECT count() FROM old.flow_responses")
    assert total == client.command("SELECT uniqExact(message_id) FROM old.flow_responses") > 0
    assert client.command("SELECT countIf(app = 'shop') FROM old.flow_responses") > 0
