"""Avro binary writers compiled from waflow's parsed schemas: the encoder's fast path.

fastavro walks the schema for every record it writes: a dict look-up and a type dispatch per
field, about 1 us a field (22 to 34 us a flow response on the benchmark machine).
`compile_writer` walks it once and returns a chain of small functions, one per field, that
write the same bytes in 0.56 to 0.73 of the time (`python -m tests.benchmarks.encode`).

The fast path only takes records it can write exactly: each value of the field's own Python
type (`str` for string, `int` for int and long, `float` for double, `bytes` for bytes, `None`
or the branch's type for a ["null", X] union), and a missing field only where its default is
null or empty. Anything else raises `NotHandled`, and the codec hands the record to fastavro,
which writes it or says what is wrong with it (schemas/codec.py). So the bytes on every topic,
and the errors, are fastavro's; tests/schemas/test_writer.py compares the two on every sample
and on generated records, right and wrong.

Schemas with parts not listed here (boolean, fixed, other unions, other logical types,
recursion) get no writer: fastavro writes them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

Write = Callable[[bytearray, Any], None]

INT_RANGE = range(-(1 << 31), 1 << 31)
LONG_RANGE = range(-(1 << 63), 1 << 63)
_MISSING = object()
TIMESTAMPS = ("timestamp-millis", "timestamp-micros")
_DOUBLE = struct.Struct("<d").pack


class NotHandled(Exception):
    """A record the fast path does not write exactly; fastavro writes it instead."""


def _varint(out: bytearray, n: int) -> None:
    """A zigzag-encoded number already folded to its unsigned form."""
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def write_long(out: bytearray, n: Any) -> None:
    if type(n) is not int or n not in LONG_RANGE:
        raise NotHandled
    _varint(out, (n << 1) ^ (n >> 63))


def write_int(out: bytearray, n: Any) -> None:
    if type(n) is not int or n not in INT_RANGE:
        raise NotHandled
    _varint(out, (n << 1) ^ (n >> 31))


def write_string(out: bytearray, s: Any) -> None:
    if type(s) is not str:
        raise NotHandled
    data = s.encode()  # a lone surrogate raises: fastavro then says what is wrong
    write_bytes(out, data)


def write_bytes(out: bytearray, b: Any) -> None:
    if type(b) is not bytes:
        raise NotHandled
    n = len(b)
    if n < 64:  # a one-byte length: most values here
        out.append(n << 1)
    else:
        _varint(out, n << 1)
    out += b


def write_double(out: bytearray, d: Any) -> None:
    if type(d) is not float:
        raise NotHandled
    out += _DOUBLE(d)


PRIMITIVES: dict[str, Write] = {
    "string": write_string,
    "bytes": write_bytes,
    "long": write_long,
    "int": write_int,
    "double": write_double,
}  # the types waflow's schemas use; a schema with another gets no writer


class Unsupported(Exception):
    """A schema part the fast path does not compile (the whole schema goes to fastavro)."""


def compile_writer(schema: Any) -> Write | None:
    """The fast writer of a schema parsed by fastavro, or None when fastavro must write it."""
    named: Mapping[str, Any] = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    try:
        return _compile(schema, named, ())
    except Unsupported:
        return None


def _compile(schema: Any, named: Mapping[str, Any], seen: tuple[str, ...]) -> Write:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return PRIMITIVES[schema]
        if schema in seen or schema not in named:
            raise Unsupported(schema)  # recursive, or not a name fastavro resolved
        return _compile(named[schema], named, (*seen, schema))
    if isinstance(schema, list):
        return _optional(schema, named, seen)
    kind = schema["type"]
    if kind in PRIMITIVES:
        # A timestamp is an int here (fastavro would also convert a datetime: NotHandled).
        if schema.get("logicalType", TIMESTAMPS[0]) not in TIMESTAMPS:
            raise Unsupported(schema["logicalType"])
        return PRIMITIVES[kind]
    if kind == "record":
        return _record(schema, named, (*seen, schema["name"]))
    if kind == "map":
        return _map(_compile(schema["values"], named, seen))
    if kind == "array":
        return _array(_compile(schema["items"], named, seen))
    if kind == "enum":
        return _enum(schema["symbols"])
    raise Unsupported(kind)


def _optional(union: list[Any], named: Mapping[str, Any], seen: tuple[str, ...]) -> Write:
    if len(union) != 2 or union[0] != "null":
        raise Unsupported(str(union))
    branch = _compile(union[1], named, seen)

    def write(out: bytearray, v: Any) -> None:
        if v is None:
            out.append(0)
        else:
            out.append(2)  # branch 1
            branch(out, v)

    return write


def _record(schema: Mapping[str, Any], named: Mapping[str, Any], seen: tuple[str, ...]) -> Write:
    fields = [(f["name"], _default(f), _compile(f["type"], named, seen)) for f in schema["fields"]]

    def write(out: bytearray, record: Any) -> None:
        if type(record) is not dict:
            raise NotHandled
        get = record.get
        for name, default, field in fields:
            value = get(name, default)
            if value is _MISSING:
                raise NotHandled
            field(out, value)

    return write


def _default(field: Mapping[str, Any]) -> Any:
    """What a missing field is written as: its default where that is null or empty."""
    if "default" not in field:
        return _MISSING
    default = field["default"]
    return default if default is None or default == [] or default == {} else _MISSING


def _map(values: Write) -> Write:
    def write(out: bytearray, m: Any) -> None:
        if type(m) is not dict:
            raise NotHandled
        if m:  # one block, then the empty block that ends it
            write_long(out, len(m))
            for k, v in m.items():
                write_string(out, k)
                values(out, v)
        out.append(0)

    return write


def _array(items: Write) -> Write:
    def write(out: bytearray, a: Any) -> None:
        if type(a) is not list:
            raise NotHandled
        if a:
            write_long(out, len(a))
            for v in a:
                items(out, v)
        out.append(0)

    return write


def _enum(symbols: list[str]) -> Write:
    index = {s: i for i, s in enumerate(symbols)}

    def write(out: bytearray, symbol: Any) -> None:
        i = index.get(symbol) if type(symbol) is str else None
        if i is None:
            raise NotHandled
        write_int(out, i)

    return write
