"""Avro binary writers compiled from waflow's parsed schemas: the encoder's fast path.

fastavro walks the schema for every record it writes: a dict look-up and a type dispatch per
field, about 1 us a field (22 to 34 us a flow response on the benchmark machine).
`compile_writer` walks it once and writes the Python source of one straight-line function per
schema: for each field in order, fetch it, check its type, append its bytes. No call and no
dispatch per field is left, so a record is written in 0.39 to 0.57 of fastavro's time
(`python -m tests.benchmarks.encode`). `writer_source(schema)` shows that source; for a flow
response's `message_id` it reads:

    v1 = record['message_id']
    if type(v1) is not str: raise NotHandled
    b2 = v1.encode()
    n3 = len(b2)
    if n3 < 64: append(n3 << 1)
    else: varint(out, n3 << 1)
    out += b2

The fast path only takes records it can write exactly: each value of the field's own Python
type (`str` for string, `int` for int and long, `float` for double, `bytes` for bytes, `None`
or the branch's type for a ["null", X] union), and a missing field only where its default is
null or empty. Anything else raises `NotHandled`, and the codec hands the record to fastavro,
which writes it or says what is wrong with it (schemas/codec.py). So the bytes on every topic,
and the errors, are fastavro's; tests/schemas/test_writer.py compares the two on every sample
and on generated records, right and wrong.

Schemas with parts not listed here (boolean, fixed, other unions, other logical types,
recursion) get no writer: fastavro writes them. Field names enter the source only as string
literals (`repr`), enum symbols only as data.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

Write = Callable[[bytearray, Any], None]

INT_BITS, LONG_BITS = 32, 64
TIMESTAMPS = ("timestamp-millis", "timestamp-micros")
PRIMITIVES = ("string", "bytes", "long", "int", "double")  # the types waflow's schemas use


class NotHandled(Exception):
    """A record the fast path does not write exactly; fastavro writes it instead."""


class Unsupported(Exception):
    """A schema part the fast path does not compile (the whole schema goes to fastavro)."""


def _varint(out: bytearray, n: int) -> None:
    """A zigzag-encoded number already folded to its unsigned form."""
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def write_long(out: bytearray, n: int) -> None:
    """An Avro long (the sink's container writer uses it for block counts and sizes)."""
    _varint(out, (n << 1) ^ (n >> 63))


def compile_writer(schema: Any) -> Write | None:
    """The fast writer of a schema parsed by fastavro, or None when fastavro must write it."""
    try:
        source, constants = _generate(schema)
        namespace: dict[str, Any] = {
            "NotHandled": NotHandled,
            "varint": _varint,
            "pack_double": struct.Struct("<d").pack,
            **constants,
        }
        # The source is built here from a parsed schema; no outside text becomes code.
        exec(compile(source, "<schemas.writer>", "exec"), namespace)  # noqa: S102
    except (Unsupported, SyntaxError, RecursionError):  # too deep to compile: fastavro's
        return None
    write: Write = namespace["write"]
    return write


def writer_source(schema: Any) -> str:
    """The Python source `compile_writer` runs for a schema (for reading; raises Unsupported)."""
    return _generate(schema)[0]


def _generate(schema: Any) -> tuple[str, dict[str, Any]]:
    named: Mapping[str, Any] = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    source = _Source(named)
    source.value(schema, "record", 2, ())
    lines = [
        "def write(out, record):",
        "    append = out.append",
        "    try:",
        *source.lines,
        "    except KeyError:  # a field with no default is missing",
        "        raise NotHandled from None",
    ]
    return "\n".join(lines) + "\n", source.constants


class _Source:
    """Emits the statements that write one value of a schema, indented `depth` levels."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def emit(self, depth: int, *lines: str) -> None:
        self.lines.extend("    " * depth + line for line in lines)

    def value(self, schema: Any, v: str, depth: int, seen: tuple[str, ...]) -> None:
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return self.primitive(schema, v, depth)
            if schema in seen or schema not in self.named:
                raise Unsupported(schema)  # recursive, or not a name fastavro resolved
            return self.value(self.named[schema], v, depth, (*seen, schema))
        if isinstance(schema, list):
            if len(schema) != 2 or schema[0] != "null":
                raise Unsupported(str(schema))
            self.emit(depth, f"if {v} is None: append(0)", "else:", "    append(2)  # branch 1")
            return self.value(schema[1], v, depth + 1, seen)
        kind = schema["type"]
        if kind in PRIMITIVES:
            # A timestamp is an int here (fastavro would also convert a datetime: NotHandled).
            if schema.get("logicalType", TIMESTAMPS[0]) not in TIMESTAMPS:
                raise Unsupported(schema["logicalType"])
            return self.primitive(kind, v, depth)
        if kind == "record":
            return self.record(schema, v, depth, (*seen, schema["name"]))
        if kind == "map":
            return self.map(schema["values"], v, depth, seen)
        if kind == "array":
            return self.array(schema["items"], v, depth, seen)
        if kind == "enum":
            return self.enum(schema["symbols"], v, depth)
        raise Unsupported(kind)

    def record(self, schema: Mapping[str, Any], v: str, depth: int, seen: tuple[str, ...]) -> None:
        self.emit(depth, f"if type({v}) is not dict: raise NotHandled")
        for field in schema["fields"]:
            name = field["name"]  # written as a literal (repr): never code
            value = self.name("v")
            default = _default(field)
            if default is None:
                self.emit(depth, f"{value} = {v}[{name!r}]")
            else:
                self.emit(depth, f"{value} = {v}.get({name!r}, {default})")
            self.value(field["type"], value, depth, seen)

    def map(self, values: Any, v: str, depth: int, seen: tuple[str, ...]) -> None:
        key, value = self.name("k"), self.name("x")
        self.emit(depth, f"if type({v}) is not dict: raise NotHandled")
        self.emit(depth, f"if {v}:  # one block, then the empty block that ends it")
        self.count_of(v, depth + 1)
        self.emit(depth + 1, f"for {key}, {value} in {v}.items():")
        self.primitive("string", key, depth + 2)
        self.value(values, value, depth + 2, seen)
        self.emit(depth, "append(0)")

    def array(self, items: Any, v: str, depth: int, seen: tuple[str, ...]) -> None:
        item = self.name("x")
        self.emit(depth, f"if type({v}) is not list: raise NotHandled")
        self.emit(depth, f"if {v}:")
        self.count_of(v, depth + 1)
        self.emit(depth + 1, f"for {item} in {v}:")
        self.value(items, item, depth + 2, seen)
        self.emit(depth, "append(0)")

    def enum(self, symbols: list[str], v: str, depth: int) -> None:
        index, i = self.name("SYMBOLS"), self.name("i")
        self.constants[index] = {s: n for n, s in enumerate(symbols)}
        self.emit(
            depth,
            f"{i} = {index}.get({v}) if type({v}) is str else None",
            f"if {i} is None: raise NotHandled",
        )
        self.size(i, depth)

    def count_of(self, v: str, depth: int) -> None:
        n = self.name("n")
        self.emit(depth, f"{n} = len({v})")
        self.size(n, depth)

    def size(self, n: str, depth: int) -> None:
        """A non-negative int (a length, a count, an index): zigzag is n << 1."""
        self.emit(depth, f"if {n} < 64: append({n} << 1)", f"else: varint(out, {n} << 1)")

    def primitive(self, kind: str, v: str, depth: int) -> None:
        if kind == "string":
            data, n = self.name("b"), self.name("n")
            # A lone surrogate raises UnicodeEncodeError: the codec then asks fastavro.
            self.emit(
                depth,
                f"if type({v}) is not str: raise NotHandled",
                f"{data} = {v}.encode()",
                f"{n} = len({data})",
            )
            self.size(n, depth)
            self.emit(depth, f"out += {data}")
        elif kind == "bytes":
            n = self.name("n")
            self.emit(depth, f"if type({v}) is not bytes: raise NotHandled", f"{n} = len({v})")
            self.size(n, depth)
            self.emit(depth, f"out += {v}")
        elif kind in ("long", "int"):
            bits = LONG_BITS if kind == "long" else INT_BITS
            low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            z = self.name("z")
            self.emit(
                depth,
                f"if type({v}) is not int or not {low} <= {v} <= {high}: raise NotHandled",
                f"{z} = ({v} << 1) ^ ({v} >> {bits - 1})",
                f"if {z} < 128: append({z})",
                f"else: varint(out, {z})",
            )
        else:  # double
            self.emit(depth, f"if type({v}) is not float: raise NotHandled")
            self.emit(depth, f"out += pack_double({v})")


def _default(field: Mapping[str, Any]) -> str | None:
    """The source of what a missing field is written as: its default where that is null or
    empty; None when a missing field is not the fast path's (it raises KeyError)."""
    if "default" not in field:
        return None
    default = field["default"]
    if default is None:
        return "None"
    if default == [] or default == {}:
        return repr(default)
    return None
