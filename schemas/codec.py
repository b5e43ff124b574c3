"""Avro single-object encoding for the typed topics, with schemas parsed once, and every released
version of each schema kept so records written by any of them still decode.

Each value is `C3 01`, the 8-byte CRC-64-AVRO fingerprint of the writer schema's canonical form,
then the Avro binary body (Avro specification, "Single-object encoding"). A consumer looks the
fingerprint up to find the writer schema and resolves it to the reader schema it wants; waflow
publishes every writer schema it uses on its schemas topic (infra/core/schemas_topic.py).

Versions: `schemas/io.waflow.<Name>.avsc` is the current schema; `schemas/history/` holds every
released version as one self-contained file, `io.waflow.<Name>.v<N>.avsc`. A change to a schema
adds the next history file (`python -m schemas.history`); tests/schemas check that the newest
history file is the current schema and that each version can read every earlier one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form
from fastavro.types import Schema

from schemas.errors import DecodeError, EncodeError
from schemas.writer import NotHandled, Write, compile_writer

SINGLE_OBJECT_MARKER = b"\xc3\x01"
NAMESPACE = "io.waflow"
DIR = Path(__file__).parent
HISTORY = DIR / "history"
TOP_LEVEL = ("FlowResponse", "FlowEvent", "WebhookChange", "DeadLetter", "ItemBatch")
_VERSION = re.compile(r"io\.waflow\.(\w+)\.v(\d+)\.avsc$")


def standalone(name: str, directory: Path = DIR) -> dict[str, Any]:
    """The schema `name` as one JSON document: each io.waflow type it names is written out in
    full where first used, as Avro requires of a schema read on its own (registries, history,
    the schemas topic)."""
    seen: set[str] = set()

    def load(short: str) -> Any:
        seen.add(f"{NAMESPACE}.{short}")
        return walk(json.loads((directory / f"{NAMESPACE}.{short}.avsc").read_text()))

    def walk(t: Any) -> Any:
        if isinstance(t, str):
            if t.startswith(f"{NAMESPACE}.") and t not in seen:
                return load(t.removeprefix(f"{NAMESPACE}."))
            return t
        if isinstance(t, list):
            return [walk(x) for x in t]
        if not isinstance(t, dict):
            return t
        out = dict(t)
        if t.get("type") == "record":
            name = t["name"] if "." in t["name"] else f"{t.get('namespace', NAMESPACE)}.{t['name']}"
            seen.add(name)
            out["fields"] = [{**f, "type": walk(f["type"])} for f in t["fields"]]
        elif t.get("type") == "array":
            out["items"] = walk(t["items"])
        elif t.get("type") == "map":
            out["values"] = walk(t["values"])
        return out

    return dict(load(name))


def fingerprint_of(schema: Schema) -> bytes:
    """CRC-64-AVRO of the Parsing Canonical Form: the single-object encoding's schema id."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


@dataclass(frozen=True)
class Version:
    """One writer schema waflow has used: what the schemas topic publishes."""

    name: str  # the short record name, e.g. FlowResponse
    version: int  # 1 = first released
    fingerprint: bytes
    document: dict[str, Any] = field(repr=False)  # the standalone schema JSON
    parsed: Schema = field(repr=False, compare=False)

    @property
    def full_name(self) -> str:
        return f"{NAMESPACE}.{self.name}"

    @property
    def canonical(self) -> str:
        return str(to_parsing_canonical_form(self.parsed))


def history(name: str, directory: Path = HISTORY) -> list[tuple[int, dict[str, Any]]]:
    """(version, schema JSON) of every released version of `name`, oldest first."""
    found = []
    for path in directory.glob(f"{NAMESPACE}.{name}.v*.avsc"):
        match = _VERSION.search(path.name)
        if match and match.group(1) == name:
            found.append((int(match.group(2)), json.loads(path.read_text())))
    return sorted(found, key=lambda pair: pair[0])


class Codec:
    """Encoder and decoder for the typed topics' records."""

    def __init__(self, directory: Path = DIR, names: tuple[str, ...] = TOP_LEVEL) -> None:
        self.schemas: dict[str, Schema] = {}
        self.headers: dict[str, bytes] = {}
        self.writers: dict[str, Write | None] = {}  # schemas/writer.py; None: fastavro only
        self.by_fingerprint: dict[bytes, tuple[str, Schema]] = {}
        self.versions: list[Version] = []
        for name in names:
            released = history(name, directory / "history")
            for number, document in released:
                self._keep(name, number, document, current=False)
            # The current schema is the newest release, or the next version while unreleased.
            self._keep(name, len(released) + 1, standalone(name, directory), current=True)

    def _keep(self, name: str, number: int, document: dict[str, Any], current: bool) -> None:
        parsed = parse_schema(document)
        fp = fingerprint_of(parsed)
        if fp not in self.by_fingerprint:
            self.versions.append(Version(name, number, fp, document, parsed))
        self.add(name, parsed, current)

    def add(self, name: str, schema: Schema, current: bool = True) -> None:
        """Register a writer schema (earlier versions too, so their records still decode)."""
        fp = fingerprint_of(schema)
        self.by_fingerprint[fp] = (name, schema)
        if current:
            self.schemas[name] = schema
            self.headers[name] = SINGLE_OBJECT_MARKER + fp
            self.writers[name] = compile_writer(schema)

    def current(self, name: str) -> Version:
        fp = self.headers[name][2:]
        return next(v for v in self.versions if v.fingerprint == fp)

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        """The record's single-object encoding. The compiled writer writes what it takes on
        exactly; fastavro writes the rest, or raises what does not fit (schemas/writer.py)."""
        fast = self.writers[name]
        if fast is not None:
            data = bytearray(self.headers[name])
            try:
                fast(data, record)
                return bytes(data)
            except (NotHandled, UnicodeEncodeError):
                pass
        return self.fastavro_encode(name, record)

    def fastavro_encode(self, name: str, record: dict[str, Any]) -> bytes:
        """The record written by fastavro alone: the reference the compiled writer matches."""
        out = BytesIO()
        out.write(self.headers[name])
        try:
            schemaless_writer(out, self.schemas[name], record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"{name} record does not fit its schema: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Return (schema name, record) read with the current schema of that name."""
        if data[:2] != SINGLE_OBJECT_MARKER or len(data) < 10:
            if data[:1] == b"\x00":
                raise DecodeError(
                    "a Confluent-framed record (magic byte 0) whose schema id was not resolved "
                    "through a schema registry (WAFLOW_SCHEMA_REGISTRY_URL)",
                    "unknown_schema",
                )
            raise DecodeError("not Avro single-object encoding (missing C3 01 marker)")
        known = self.by_fingerprint.get(data[2:10])
        if known is None:
            raise DecodeError(
                f"unknown writer schema fingerprint {data[2:10].hex()}", "unknown_schema"
            )
        name, writer = known
        current = self.schemas.get(name, writer)
        # No reader schema when the writer is the current one: fastavro then skips schema
        # resolution, a fifth of the decode (11 -> 9 us a record).
        reader = None if current is writer else current
        try:
            record = schemaless_reader(BytesIO(data[10:]), writer, reader)
        except (ValueError, TypeError, EOFError, IndexError) as exc:
            raise DecodeError(f"{name} body does not decode: {exc}") from exc
        if not isinstance(record, dict):
            raise DecodeError(f"{name} body is not a record")
        return name, record


def publication(c: Codec) -> list[tuple[bytes, bytes]]:
    """(key, value) of each writer schema for the schemas topic (`<prefix>.schemas`, compacted):
    the key is the fingerprint as 16 hex digits, the value a JSON object with the full `name`,
    `version`, `fingerprint`, the standalone `schema` and its Parsing Canonical Form."""
    out = []
    for v in c.versions:
        value = {
            "name": v.full_name,
            "version": v.version,
            "fingerprint": v.fingerprint.hex(),
            "schema": v.document,
            "canonical": v.canonical,
        }
        out.append((v.fingerprint.hex().encode(), json.dumps(value, ensure_ascii=False).encode()))
    return out


@cache
def codec() -> Codec:
    """The process-wide codec: schemas are read and parsed on first use, never at import."""
    return Codec()
