"""The Confluent wire format for the typed and dead-letter topics, when WAFLOW_SCHEMA_REGISTRY_URL
is set: magic byte 0, the registry's 4-byte schema id, then the same Avro binary body.

Writing: the first record of each schema goes through confluent-kafka's own `AvroSerializer`
(subject `<topic>-value`, auto-registration; `BACKWARD_TRANSITIVE` is requested for a subject
the registry does not have yet). That registers the schema and gives the 5-byte header; every
later record of that schema is the header plus the body the codec already encoded, checked once
to be byte for byte what the serializer wrote. The body is encoded once, never twice.

Reading: `Confluent.to_single_object` turns a framed record into the codec's single-object form,
looking its schema id up in the registry once. The sink, replay and reconcile therefore read
both formats, and a switch mid-stream loses nothing. A schema id the registry does not have, or
whose schema is not one waflow ever wrote, stays undecodable: the sink dead-letters it with
reason `unknown_schema`, and the partition goes on.

Exercised against confluent-kafka's in-memory registry client (`mock://` URLs, in one process);
not against a registry server: none can be installed where waflow is developed.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from functools import cache
from typing import Any

from fastavro.schema import parse_schema

from infra.core.settings import Settings
from schemas import catalog
from schemas.codec import SINGLE_OBJECT_MARKER, codec, fingerprint_of
from schemas.errors import EncodeError

log = logging.getLogger("waflow.confluent")
MAGIC = b"\x00"
COMPATIBILITY = "BACKWARD_TRANSITIVE"


@cache
def registry_client(url: str, user: str, password: str, ca: str) -> Any:
    """One registry client per process and registry: its caches (and, for a mock:// URL, its
    in-memory registry) are shared by every writer and reader in the process."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    conf: dict[str, Any] = {"url": url}
    if user:
        conf["basic.auth.user.info"] = f"{user}:{password}"
    if ca:
        conf["ssl.ca.location"] = ca
    return SchemaRegistryClient.new_client(conf)


class Confluent:
    """Encoder (`encode`, as streams.encode.Encode) and reader side of the Confluent format."""

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.client = client or registry_client(
            settings.schema_registry_url,
            settings.schema_registry_user,
            settings.schema_registry_password,
            str(settings.schema_registry_ca or ""),
        )
        t = settings.topics
        self.topic_of = {k.schema: t.typed(k.kind) for k in catalog.KINDS}
        self.headers: dict[str, bytes] = {}  # schema name -> magic byte and schema id
        self.fingerprints: dict[int, bytes | None] = {}  # schema id -> fingerprint (None: not ours)
        self.lock = threading.Lock()

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        value = codec().encode(name, record)
        header = self.headers.get(name)
        if header is None:
            header = self._register(name, record, value[10:])
        return header + value[10:]

    def _register(self, name: str, record: dict[str, Any], body: bytes) -> bytes:
        from confluent_kafka.schema_registry.avro import AvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        topic = self.topic_of[name]
        subject = f"{topic}-value"
        schema = json.dumps(codec().current(name).document)
        try:
            self._ask_for_compatibility(subject)
            serializer = AvroSerializer(self.client, schema, conf={"auto.register.schemas": True})
            framed = serializer(record, SerializationContext(topic, MessageField.VALUE))
        except Exception as exc:
            raise EncodeError(f"schema registry: cannot register {subject}: {exc}") from exc
        if framed is None or framed[:1] != MAGIC or framed[5:] != body:
            raise EncodeError(
                f"{subject}: confluent-kafka's AvroSerializer wrote other bytes than the codec"
            )
        header = bytes(framed[:5])
        self.headers[name] = header
        return header

    def _ask_for_compatibility(self, subject: str) -> None:
        """BACKWARD_TRANSITIVE for a subject the registry does not have yet; an existing
        subject keeps what its owners chose."""
        from confluent_kafka.schema_registry import ConfigCompatibilityLevel, ServerConfig
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            self.client.get_versions(subject)
            return
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:
                raise
        level = ConfigCompatibilityLevel(COMPATIBILITY)
        self.client.set_config(subject, ServerConfig(compatibility=level))

    def to_single_object(self, value: bytes) -> bytes:
        """A framed record as the codec's single-object form; other bytes unchanged. A schema id
        that cannot be resolved leaves the record as it is (it then decodes to a dead letter)."""
        if value[:1] != MAGIC or len(value) < 5:
            return value
        (schema_id,) = struct.unpack(">I", value[1:5])
        fp = self.fingerprints.get(schema_id, b"")
        if fp == b"":
            fp = self._resolve(schema_id)
        return value if fp is None else SINGLE_OBJECT_MARKER + fp + value[5:]

    def _resolve(self, schema_id: int) -> bytes | None:
        with self.lock:
            try:
                schema = self.client.get_schema(schema_id)
                fp: bytes | None = fingerprint_of(parse_schema(json.loads(schema.schema_str)))
            except Exception as exc:  # unknown id, registry down, not Avro
                log.warning(
                    "schema id not resolved", extra={"schema_id": schema_id, "error": str(exc)}
                )
                return None  # not cached: a registry back up resolves it next time
            if fp not in codec().by_fingerprint:
                fp = None  # a schema waflow never wrote: never one of its rows
            self.fingerprints[schema_id] = fp
            return fp


def wire(settings: Settings) -> Confluent | None:
    """The Confluent format when a registry is configured, else None (single-object Avro)."""
    return Confluent(settings) if settings.schema_registry_url else None
