"""The Confluent wire format, proved with confluent-kafka's own deserializer and its in-memory
registry client (mock://): no registry server can run here."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from infra.core.confluent import Confluent, registry_client
from schemas import codec
from schemas.errors import DecodeError
from sink.batch import Consumed, cut
from streams.normalize import normalize
from streams.records import SCHEMA_OF, RawMeta
from tests.conftest import make_settings
from tests.sink.test_load import NOW

META = RawMeta("waflow.webhooks.raw", 0, 1, 1_700_000_000_000, "r", app="shop")


def framing(name: str) -> Confluent:
    settings = make_settings(WAFLOW_SCHEMA_REGISTRY_URL=f"mock://{name}")
    return Confluent(settings)


def outputs(payloads: dict[str, bytes]) -> list[tuple[str, dict[str, Any]]]:
    found = [o for body in payloads.values() for o in normalize(body, META)]
    found += normalize(b"not json", META)  # a dead letter too
    return [(SCHEMA_OF[o.kind], o.record) for o in found]


def test_confluents_deserializer_reads_what_waflow_writes(payloads: dict[str, bytes]) -> None:
    wire = framing("read")
    for name, record in outputs(payloads):
        value = wire.encode(name, record)
        assert value[:1] == b"\x00"
        topic = wire.topic_of[name]
        deserializer = AvroDeserializer(wire.client)
        read = deserializer(value, SerializationContext(topic, MessageField.VALUE))
        assert read == codec().decode(codec().encode(name, record))[1]
        # And waflow reads it back through the registry, as the sink does.
        assert codec().decode(wire.to_single_object(value)) == (name, read)


def test_each_subject_is_topic_value_and_registered_once(payloads: dict[str, bytes]) -> None:
    wire = framing("subjects")
    for name, record in outputs(payloads) * 2:
        wire.encode(name, record)
    subjects = sorted(wire.client.get_subjects())
    assert subjects == sorted(f"{wire.topic_of[n]}-value" for n in wire.headers)
    assert all(wire.client.get_versions(s) == [1] for s in subjects)


def test_an_unknown_schema_id_or_a_foreign_schema_is_a_dead_letter_not_a_crash(
    payloads: dict[str, bytes],
) -> None:
    wire = framing("unknown")
    name, record = outputs(payloads)[0]
    value = wire.encode(name, record)
    unknown = b"\x00" + struct.pack(">I", 999_999) + value[5:]
    assert wire.to_single_object(unknown) == unknown
    foreign_id = wire.client.register_schema(
        "other-value", Schema('{"type":"record","name":"X","fields":[]}', "AVRO")
    )
    foreign = b"\x00" + struct.pack(">I", foreign_id) + value[5:]
    assert wire.to_single_object(foreign) == foreign
    for bad in (unknown, foreign):
        with pytest.raises(DecodeError) as caught:
            codec().decode(bad)
        assert caught.value.reason == "unknown_schema"
    good = wire.to_single_object(value)
    batches = cut([Consumed("t", 0, 5, unknown), Consumed("t", 0, 6, good)], NOW)
    assert batches.dead_reasons == {"unknown_schema": 1}


def test_one_client_per_registry_in_a_process() -> None:
    assert registry_client("mock://a", "", "", "") is registry_client("mock://a", "", "", "")
    assert registry_client("mock://a", "", "", "") is not registry_client("mock://b", "", "", "")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WAFLOW_SCHEMA_REGISTRY_URL": "ftp://x"}, "http"),
        ({"WAFLOW_SCHEMA_REGISTRY_USER": "u"}, "without WAFLOW_SCHEMA_REGISTRY_URL"),
        (
            {"WAFLOW_SCHEMA_REGISTRY_URL": "https://r", "WAFLOW_SCHEMA_REGISTRY_USER": "u"},
            "go together",
        ),
    ],
)
def test_registry_settings_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(Exception, match=message):
        make_settings(**env)
