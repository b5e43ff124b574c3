"""Rows the engine decodes itself. Pure: an Avro container of a batch's record bodies, and the one
INSERT ... SELECT that checks, dedups and loads it.

The typed topics hold Avro single-object records; their bodies, concatenated after a container
header that names the writer schema, are an Avro object container file ClickHouse reads natively.
The sink then does no per-row decoding in Python. The statement applies the same checks as
`sink.rows` (timestamps inside DateTime64's range, lineage counters non-negative) and stops at the
first row that fails them: that batch then takes the Python path, which dead-letters the row.
"""

from __future__ import annotations

from functools import cache
from io import BytesIO
from typing import Any

from fastavro import writer
from fastavro.schema import expand_schema

from schemas import codec
from schemas.catalog import columns
from schemas.writer import write_long
from sink.rows import COUNTERS, TABLES, TIME_MAX, TIME_MIN

SYNC = b"waflow-sink-sync"  # any 16 bytes: the container has one block
_PRIMITIVE = {
    "string": "String",
    "bytes": "String",
    "int": "Int32",
    "long": "Int64",
    "float": "Float32",
    "double": "Float64",
    "boolean": "Bool",
}
_LO = int(TIME_MIN.timestamp() * 1000)
_HI = int(TIME_MAX.timestamp() * 1000)


def _long(n: int) -> bytes:
    """Avro's zig-zag varint."""
    out = bytearray()
    write_long(out, n)
    return bytes(out)


@cache
def header(fingerprint: bytes) -> bytes:
    """The container header naming the writer schema of `fingerprint`, built once."""
    _, schema = codec().by_fingerprint[fingerprint]
    out = BytesIO()
    writer(out, schema, [], codec="null", sync_marker=SYNC)
    return out.getvalue()


def container(fingerprint: bytes, bodies: list[bytes]) -> bytes:
    """One Avro object container file holding `bodies`, all written with the schema of
    `fingerprint`. The engine resolves it to the current schema's columns by field name; a
    field an earlier version lacks is filled with its column's default (NULL for the optional
    fields that versions add)."""
    data = b"".join(bodies)
    return b"".join((header(fingerprint), _long(len(bodies)), _long(len(data)), data, SYNC))


def _type(t: Any) -> str:
    """ClickHouse type of an Avro type; timestamps stay Int64 so their range can be checked."""
    if isinstance(t, str):
        return _PRIMITIVE[t]
    if isinstance(t, list):
        [inner] = [x for x in t if x != "null"]
        return f"Nullable({_type(inner)})" if "null" in t else _type(inner)
    kind = t["type"]
    if kind == "record":
        return "Tuple(" + ", ".join(f"{f['name']} {_type(f['type'])}" for f in t["fields"]) + ")"
    if kind == "array":
        return f"Array({_type(t['items'])})"
    if kind == "map":
        return f"Map(String, {_type(t['values'])})"
    if kind == "enum":
        return "String"
    return _PRIMITIVE[kind]  # a primitive with a logical type or attributes


@cache
def _parts(name: str) -> tuple[str, str, str]:
    """(structure, select list, row check) for the current schema of `name`: the columns and
    their checks are the catalog's, as on the Python path (sink.rows)."""
    schema: dict[str, Any] = expand_schema(codec().schemas[name])  # type: ignore[assignment]
    structure = ", ".join(f"`{f['name']}` {_type(f['type'])}" for f in schema["fields"])
    select, checks = [], []
    for column in columns(name):
        if column.many:  # errors.error_type: a Nested column from an array of records
            select.append(f"arrayMap(x -> x.`{column.sub}`, `{column.field}`)")
        elif column.sub is not None:  # a field of a nested record (the lineage)
            value = f"`{column.field}`.`{column.sub}`"
            select.append(value)
            if column.name in COUNTERS:
                checks.append(f"{value} >= 0")
        elif column.time:
            select.append(f"fromUnixTimestamp64Milli(`{column.field}`, 'UTC')")
            checks.append(f"(`{column.field}` IS NULL OR `{column.field}` BETWEEN {_LO} AND {_HI})")
        else:
            select.append(f"`{column.field}`")
    return structure, ", ".join(select), " AND ".join(checks) or "1"


def insert(database: str, name: str, path: str, token: str, copies_within_days: int = 7) -> str:
    """Load the container at `path` into the table of `name`: rows that pass the checks, once
    per id, and only ids the table does not have (looked up within the batch's time range,
    widened by `copies_within_days` each way: a redelivered copy may carry another time)."""
    table = TABLES[name]
    structure, select, check = _parts(name)
    source = f"file('{path}', 'Avro', '{structure}')"
    ident = table.id_column
    present = (
        f"SELECT `{ident}` FROM {database}.{table.name} "
        f"WHERE `{ident}` IN (SELECT `{ident}` FROM {source})"
    )
    if table.time_column is not None:
        at = f"fromUnixTimestamp64Milli(`{table.time_column}`, 'UTC')"
        slack = f"INTERVAL {int(copies_within_days)} DAY"
        present += (
            f" AND `{table.time_column}` BETWEEN (SELECT min({at}) FROM {source}) - {slack}"
            f" AND (SELECT max({at}) FROM {source}) + {slack}"
        )
    columns = ", ".join(f"`{c}`" for c in table.columns)
    token = token.replace("\\", "\\\\").replace("'", "\\'")
    return (
        f"INSERT INTO {database}.{table.name} ({columns}) "
        f"SETTINGS insert_deduplication_token = '{token}', "
        "input_format_avro_allow_missing_fields = 1 "
        f"SELECT {select} FROM {source} "
        f"WHERE throwIf(NOT ({check}), 'waflow: a row fails the sink checks') = 0 "
        f"AND `{ident}` NOT IN ({present}) LIMIT 1 BY `{ident}`"
    )
