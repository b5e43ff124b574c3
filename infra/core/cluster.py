"""ClickHouse cluster DDL, rendered from the same migrations as the single-server schema.

With WAFLOW_CLICKHOUSE_CLUSTER set, each `CREATE TABLE {db}.t ... ENGINE = ReplacingMergeTree`
becomes two statements run `ON CLUSTER` (and each `ALTER TABLE {db}.t` alters both, but a
`MODIFY SETTING` of MergeTree settings only the replicated one; a
materialized view reads and writes the `_local` tables on each replica):

- `{db}.t_local`, a `ReplicatedReplacingMergeTree` on every replica of every shard, and
- `{db}.t`, a `Distributed` table over the `_local` tables under the original name, so the
  sink, the views and analysts' SQL use the same names on a cluster as on one server.

Rows are sharded by a hash of the natural key (the last ORDER BY column): every copy of an
item lands on the same shard, where ReplacingMergeTree can merge it away, and shards stay
balanced even when one WABA sends most of the traffic. Pure text in, text out: no I/O.
"""

from __future__ import annotations

import re

from infra.core.errors import ClickHouseError

_CREATE_TABLE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (?P<db>\w+)\.(?P<table>\w+)\s*(?P<rest>.*)$", re.S
)
_ALTER_TABLE = re.compile(r"^ALTER TABLE (?P<db>\w+)\.(?P<table>\w+)\s+(?P<rest>.*)$", re.S)
_MATERIALIZED = re.compile(
    r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (?P<db>\w+)\.(?P<name>\w+)\s+TO\s+"
    r"(?P<target>\w+\.\w+)\s+AS\s+(?P<select>.*?)FROM\s+(?P<source>\w+\.\w+)(?P<rest>.*)$",
    re.S,
)
_ENGINE = re.compile(r"ENGINE\s*=\s*(?P<engine>\w*MergeTree)\b(?:\(\))?")
_ORDER_BY = re.compile(r"ORDER BY\s*")
# Replicated tables deduplicate inserts by themselves; this setting is for plain MergeTree only.
_NON_REPLICATED = re.compile(r"\s*SETTINGS non_replicated_deduplication_window\s*=\s*\d+\s*$")


def render(statement: str, cluster: str) -> list[str]:
    """One single-server statement as the statements that create it on `cluster`."""
    if not cluster:
        return [statement]
    if statement.startswith("CREATE DATABASE"):
        return [f"{statement} ON CLUSTER {cluster}"]
    if statement.startswith(("CREATE VIEW", "CREATE OR REPLACE VIEW")):
        return [
            re.sub(
                r"^(CREATE (?:OR REPLACE )?VIEW (?:IF NOT EXISTS )?\w+\.\w+)",
                rf"\1 ON CLUSTER {cluster}",
                statement,
            )
        ]
    if statement.startswith("INSERT INTO"):  # through the Distributed table, once
        return [statement]
    view = _MATERIALIZED.match(statement)
    if view is not None:  # on each replica: from the local source into the local target
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view['db']}.{view['name']} "
            f"ON CLUSTER {cluster} TO {view['target']}_local AS {view['select']}"
            f"FROM {view['source']}_local{view['rest']}"
        ]
    altered = _ALTER_TABLE.match(statement)
    if altered is not None:  # the replicated tables and the Distributed one over them
        db, table, rest = altered["db"], altered["table"], altered["rest"]
        if rest.startswith("MODIFY SETTING"):  # MergeTree settings: a Distributed has none
            return [f"ALTER TABLE {db}.{table}_local ON CLUSTER {cluster} {rest}"]
        return [
            f"ALTER TABLE {db}.{table}_local ON CLUSTER {cluster} {rest}",
            f"ALTER TABLE {db}.{table} ON CLUSTER {cluster} {rest}",
        ]
    match = _CREATE_TABLE.match(statement)
    if match is None:
        raise ClickHouseError(f"no cluster form for migration statement: {statement[:80]!r}")
    db, table, rest = match["db"], match["table"], match["rest"]
    engine = _ENGINE.search(rest)
    if engine is None:
        raise ClickHouseError(f"{db}.{table}: only MergeTree tables can be replicated")
    local = f"{table}_local"
    replicated = (
        f"ENGINE = Replicated{engine['engine']}"
        f"('/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}')"
    )
    body = _NON_REPLICATED.sub("", rest[: engine.start()] + replicated + rest[engine.end() :])
    return [
        f"CREATE TABLE IF NOT EXISTS {db}.{local} ON CLUSTER {cluster} {body}",
        f"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster} AS {db}.{local} "
        f"ENGINE = Distributed({cluster}, {db}, {local}, cityHash64({natural_key(rest)}))",
    ]


def natural_key(table_definition: str) -> str:
    """The last column of the ORDER BY: the id ReplacingMergeTree collapses copies on."""
    order = _ORDER_BY.search(table_definition)
    if order is None:
        raise ClickHouseError("a replicated table needs an ORDER BY to shard on")
    text = table_definition[order.end() :]
    if not text.startswith("("):
        return text.split()[0]
    depth, last = 0, 1
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 1:
            last = i + 1
        if depth == 0:
            return text[last:i].strip()
    raise ClickHouseError("unbalanced parentheses in ORDER BY")
