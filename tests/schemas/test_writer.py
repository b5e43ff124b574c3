"""The compiled writer (schemas/writer.py) against fastavro: the same bytes, or the same refusal."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.control.loadgen import Generator
from schemas import codec
from schemas.codec import TOP_LEVEL
from schemas.errors import EncodeError
from schemas.writer import NotHandled, compile_writer, writer_source
from streams.items import pack
from streams.normalize import normalize
from streams.records import DLQ, SCHEMA_OF, RawMeta

# One flow response whose response_json does not decode: a dead letter beside the typed items.
BAD_REPLY = (
    b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": '
    b'"messages", "value": {"messages": [{"id": "m", "timestamp": "1", "interactive": {"type": '
    b'"nfm_reply", "nfm_reply": {"response_json": "{not json"}}}]}}]}]}'
)
META = RawMeta("waflow.webhooks.raw", 3, 12345678901, 1_700_000_000_000, "req-1", "", "shop")


def fast(name: str, record: dict[str, Any]) -> bytes:
    """What the compiled writer alone writes (NotHandled when it hands the record on)."""
    writer = codec().writers[name]
    assert writer is not None
    out = bytearray(codec().headers[name])
    writer(out, record)
    return bytes(out)


def outcome(write: Any, name: str, record: dict[str, Any]) -> bytes | str:
    try:
        return bytes(write(name, record))
    except EncodeError:
        return "refused"


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_every_top_level_schema_compiles(name: str) -> None:
    assert codec().writers[name] is not None


def test_every_sample_and_generated_record_is_written_as_fastavro_writes_it(
    payloads: dict[str, bytes],
) -> None:
    gen = Generator(seed=7)
    generated = [gen.delivery(1_764_000_000 + i).body for i in range(300)]
    bodies = [BAD_REPLY, *payloads.values(), *generated]
    outputs = [out for body in bodies for out in normalize(body, META)]
    kinds = {out.kind for out in outputs}
    assert {"responses", "events", "other", DLQ} <= kinds
    for out in outputs:
        name = SCHEMA_OF[out.kind]
        # The fast path takes every record the normalizer makes (no NotHandled) ...
        assert fast(name, out.record) == codec().fastavro_encode(name, out.record)
    # ... and the items topic's batches too.
    typed = [(o, codec().encode(SCHEMA_OF[o.kind], o.record)) for o in outputs if o.kind != DLQ]
    for _, value in pack(typed, 12):
        assert value == codec().fastavro_encode("ItemBatch", codec().decode(value)[1])


EDGES: list[tuple[str, dict[str, Any]]] = [
    ("long string", {"message_id": "é" * 5000}),
    ("64-byte string", {"message_id": "x" * 64}),
    ("63-byte string", {"message_id": "x" * 63}),
    ("negative long", {"responded_at": -1}),
    ("largest long", {"responded_at": (1 << 63) - 1}),
    ("smallest long", {"responded_at": -(1 << 63)}),
    ("long out of range", {"responded_at": 1 << 63}),
    ("bool for a long", {"responded_at": True}),
    ("float for a long", {"responded_at": 1.5}),
    ("empty map", {"response": {}}),
    ("non-string map value", {"response": {"a": 1}}),
    ("non-string map key", {"response": {1: "a"}}),
    ("lone surrogate", {"body": "\udc80"}),
    ("int for a string", {"message_id": 5}),
    ("None for a required string", {"message_id": None}),
    ("bytes for a string", {"message_id": b"x"}),
    ("missing optional field", {"username": "__drop__"}),
    ("missing required field", {"message_id": "__drop__"}),
    ("extra field", {"not_in_schema": "x"}),
    ("lineage not a dict", {"lineage": [1]}),
    ("int out of range in lineage", {"lineage": {"raw_partition": 1 << 31}}),
    ("negative int in lineage", {"lineage": {"raw_partition": -(1 << 31)}}),
]


@pytest.mark.parametrize(("label", "change"), EDGES, ids=[label for label, _ in EDGES])
def test_edges_match_fastavro(label: str, change: dict[str, Any]) -> None:
    body = Generator(seed=1).delivery(1_764_000_000).body
    record = next(o.record for o in normalize(body, META) if o.kind == "responses")
    record = dict(record)
    for key, value in change.items():
        if value == "__drop__":
            del record[key]
        elif key == "lineage" and isinstance(value, dict):
            record[key] = {**record[key], **value}
        else:
            record[key] = value
    name = "FlowResponse"
    assert outcome(codec().encode, name, record) == outcome(codec().fastavro_encode, name, record)


def test_a_record_the_writer_does_not_take_goes_to_fastavro() -> None:
    with pytest.raises(NotHandled):
        fast("DeadLetter", {"dead_letter_id": 7})
    with pytest.raises(EncodeError):
        codec().encode("DeadLetter", {"dead_letter_id": 7})


def test_schemas_with_parts_it_does_not_know_get_no_writer() -> None:
    from fastavro import parse_schema

    parts: list[Any] = [
        {"type": "fixed", "name": "H", "size": 2},
        ["int", "string"],
        {"type": "bytes", "logicalType": "decimal", "precision": 4},
        "boolean",
    ]
    for part in parts:
        schema = {"type": "record", "name": "R", "fields": [{"name": "f", "type": part}]}
        assert compile_writer(parse_schema(schema)) is None


def value_for(schema: Any, named: dict[str, Any], wrong: bool) -> st.SearchStrategy[Any]:
    """Values of the field's type; with `wrong`, now and then of another type or missing."""
    other = st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=5), st.binary())
    if isinstance(schema, list):  # ["null", X]
        return st.one_of(st.none(), value_for(schema[1], named, wrong))
    kind = schema if isinstance(schema, str) else schema["type"]
    right: st.SearchStrategy[Any] = {
        "string": st.text(max_size=80),
        "bytes": st.binary(max_size=80),
        "int": st.integers(-(1 << 32), 1 << 32),
        "long": st.integers(-(1 << 64), 1 << 64),
        "double": st.floats(allow_nan=False),
        "boolean": st.booleans(),
    }.get(kind, st.just(None))
    if kind == "map":
        values = value_for(schema["values"], named, wrong)
        right = st.dictionaries(st.text(max_size=10), values, max_size=4)
    elif kind == "array":
        right = st.lists(value_for(schema["items"], named, wrong), max_size=3)
    elif kind == "enum":
        right = st.sampled_from(schema["symbols"])
    elif kind == "record":
        right = record_for(schema, named, wrong)
    elif kind in named:
        right = record_for(named[kind], named, wrong)
    return st.one_of(right, right, right, other) if wrong else right


def record_for(
    schema: dict[str, Any], named: dict[str, Any], wrong: bool
) -> st.SearchStrategy[dict[str, Any]]:
    fields = {f["name"]: value_for(f["type"], named, wrong) for f in schema["fields"]}
    if wrong:  # any field may be missing: fastavro fills a default or refuses
        return st.fixed_dictionaries({}, optional=fields)
    return st.fixed_dictionaries(fields)


@pytest.mark.parametrize("wrong", [False, True], ids=["well-typed", "any"])
@pytest.mark.parametrize("name", TOP_LEVEL)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_generated_records_match_fastavro(name: str, wrong: bool, data: st.DataObject) -> None:
    schema: dict[str, Any] = codec().schemas[name]  # type: ignore[assignment]
    record = data.draw(record_for(schema, schema["__named_schemas"], wrong))
    assert outcome(codec().encode, name, record) == outcome(codec().fastavro_encode, name, record)


def test_a_field_name_is_never_code() -> None:
    from fastavro import parse_schema

    name = "a'] ; raise SystemExit ; x = ['"
    schema = parse_schema(
        {"type": "record", "name": "R", "fields": [{"name": name, "type": "string"}]},
        _force=True,
    )
    write = compile_writer(schema)
    assert write is not None
    out = bytearray()
    write(out, {name: "ok"})
    assert bytes(out) == b"\x04ok"
    assert repr(name) in writer_source(schema)
