"""Cluster DDL rendered from the single-server migrations (pure text; the engine parses it in
tests/integration/test_clickhouse.py)."""

from __future__ import annotations

import pytest

from infra.core.clickhouse import ddl
from infra.core.cluster import natural_key, render
from infra.core.errors import ClickHouseError
from tests.conftest import make_settings


def test_without_a_cluster_the_statements_are_unchanged() -> None:
    statement = "CREATE TABLE IF NOT EXISTS db.t (a String) ENGINE = ReplacingMergeTree ORDER BY a"
    assert render(statement, "") == [statement]


def test_a_mergetree_setting_goes_to_the_replicated_table_only() -> None:
    # A Distributed table has no MergeTree settings: the engine refuses them there.
    statement = "ALTER TABLE db.t MODIFY SETTING max_cleanup_delay_period = 30"
    assert render(statement, "main") == [
        "ALTER TABLE db.t_local ON CLUSTER main MODIFY SETTING max_cleanup_delay_period = 30"
    ]
    columns = "ALTER TABLE db.t ADD COLUMN IF NOT EXISTS app String"
    assert [s.split()[2] for s in render(columns, "main")] == ["db.t_local", "db.t"]


def test_every_table_becomes_replicated_local_plus_distributed_under_its_own_name() -> None:
    single = ddl("waflow")
    clustered = ddl("waflow", "main")
    tables = [s.split()[5] for s in single if s.startswith("CREATE TABLE")]
    assert "waflow.flow_responses" in tables and "waflow.dead_letters" in tables
    for statement in clustered:  # an INSERT goes once, through the Distributed table
        assert " ON CLUSTER main" in statement or statement.startswith("INSERT INTO")
        assert "non_replicated_deduplication_window" not in statement
    for table in tables:
        db, name = table.split(".")
        local = next(
            s for s in clustered if s.startswith(f"CREATE TABLE IF NOT EXISTS {table}_local ")
        )
        path = f"/clickhouse/tables/{{shard}}/{db}/{name}_local"
        assert f"ReplicatedReplacingMergeTree('{path}', '{{replica}}')" in local
        assert any(
            s.startswith(f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER main AS {table}_local ")
            and f"Distributed(main, {db}, {name}_local, cityHash64(" in s
            for s in clustered
        )
    # The views keep reading the plain names, which are the Distributed tables on a cluster.
    views = [s for s in clustered if s.startswith("CREATE VIEW")]
    assert len(views) == len([s for s in single if s.startswith("CREATE VIEW")]) == 5


def test_rows_are_sharded_on_the_natural_key_so_copies_meet_on_one_shard() -> None:
    assert natural_key("ORDER BY (waba_id, toDate(responded_at), message_id)") == "message_id"
    assert natural_key("ORDER BY (flow_id, event_time, event_id) SETTINGS x = 1") == "event_id"
    assert natural_key("ORDER BY version") == "version"


def test_a_statement_without_a_cluster_form_is_an_error_not_a_silent_pass() -> None:
    with pytest.raises(ClickHouseError, match="no cluster form"):
        render("DROP TABLE db.t", "main")
    with pytest.raises(ClickHouseError, match="MergeTree"):
        render("CREATE TABLE IF NOT EXISTS db.t (a String) ENGINE = Memory", "main")


def test_a_materialized_view_reads_and_writes_the_local_tables() -> None:
    [view] = render(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS db.v TO db.t AS\nSELECT a FROM db.s WHERE x", "c"
    )
    assert view == (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS db.v ON CLUSTER c TO db.t_local "
        "AS SELECT a FROM db.s_local WHERE x"
    )


def test_an_alter_changes_the_replicated_tables_and_the_distributed_one() -> None:
    assert render("ALTER TABLE db.t ADD COLUMN IF NOT EXISTS x String", "main") == [
        "ALTER TABLE db.t_local ON CLUSTER main ADD COLUMN IF NOT EXISTS x String",
        "ALTER TABLE db.t ON CLUSTER main ADD COLUMN IF NOT EXISTS x String",
    ]


def test_the_cluster_setting_is_refused_for_the_embedded_engine_and_for_bad_names() -> None:
    with pytest.raises(Exception, match="needs a ClickHouse server URL"):
        make_settings(WAFLOW_CLICKHOUSE_CLUSTER="main")
    with pytest.raises(Exception, match="remote_servers"):
        make_settings(WAFLOW_CLICKHOUSE_URL="http://h:8123/db", WAFLOW_CLICKHOUSE_CLUSTER="a;b")
    ok = make_settings(WAFLOW_CLICKHOUSE_URL="http://h:8123/db", WAFLOW_CLICKHOUSE_CLUSTER="main")
    assert ok.clickhouse_cluster == "main"


def test_embedded_engine_missing_says_how_to_install_it(monkeypatch, tmp_path) -> None:
    import importlib.util

    from infra.core.clickhouse import connect

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "chdb" else real(name, *a)
    )
    with pytest.raises(ClickHouseError, match=r"waflow\[embedded\]"):
        connect(f"chdb://{tmp_path}")


def test_retention_statements_change_only_what_differs() -> None:
    from infra.core.clickhouse import ttl_statements

    days = (("flow_responses", 0), ("dead_letters", 30), ("webhook_changes", 90))
    current = {
        "flow_responses": "ReplacingMergeTree ORDER BY x TTL responded_at + toIntervalDay(5)",
        "dead_letters": "ReplacingMergeTree ORDER BY x TTL failed_at + toIntervalDay(30)",
        "webhook_changes": "ReplacingMergeTree ORDER BY x",
    }
    assert ttl_statements("db", days, current) == [
        "ALTER TABLE db.flow_responses REMOVE TTL",
        "ALTER TABLE db.webhook_changes MODIFY TTL received_at + INTERVAL 90 DAY "
        "SETTINGS materialize_ttl_after_modify = 0",
    ]
    [clustered] = ttl_statements("db", (("webhook_changes", 7),), {}, "main")
    assert clustered.startswith("ALTER TABLE db.webhook_changes_local ON CLUSTER main MODIFY TTL")


def test_the_statuses_backfill_selects_what_the_view_selects() -> None:
    """Migration 0004 writes the statuses SELECT twice (a materialized view cannot read a
    view); the backfill must load exactly what the view would have."""
    from infra.core.clickhouse import migrations, statements

    [sql] = [sql for version, _, sql in migrations() if version == 4]
    parts = statements(sql, "db")
    [view] = [p for p in parts if p.startswith("CREATE MATERIALIZED VIEW")]
    [backfill] = [p for p in parts if p.startswith("INSERT INTO db.message_statuses")]
    assert view.split(" AS\n", 1)[1] == backfill.split("\n", 1)[1]
