"""Every released schema version is kept, the newest is the current schema, and each version
reads records of every earlier one (Avro's own resolution, as fastavro implements it)."""

from __future__ import annotations

from io import BytesIO

import pytest
from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import parse_schema
from fastavro.utils import generate_many

from schemas.codec import SINGLE_OBJECT_MARKER, TOP_LEVEL, codec, history, standalone


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_the_newest_release_is_the_current_schema(name: str) -> None:
    released = history(name)
    assert released, f"{name} has no release in schemas/history"
    assert [v for v, _ in released] == list(range(1, len(released) + 1))
    assert released[-1][1] == standalone(name), (
        f"io.waflow.{name}.avsc changed since its last release: run `python -m schemas.history`"
    )


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_every_version_reads_every_earlier_one(name: str) -> None:
    """Backward transitive: any later reader resolves any earlier writer's records."""
    parsed = [(v, parse_schema(doc)) for v, doc in history(name)]
    for i, (old, writer) in enumerate(parsed):
        records = list(generate_many(writer, 50))
        for new, reader in parsed[i:]:
            for record in records:
                out = BytesIO()
                schemaless_writer(out, writer, record)
                out.seek(0)
                read = schemaless_reader(out, writer, reader)
                assert isinstance(read, dict), (name, old, new)


def test_the_codec_reads_records_of_every_version_with_the_current_schema() -> None:
    c = codec()
    for version in c.versions:
        current = c.current(version.name)
        for record in generate_many(version.parsed, 20):
            out = BytesIO()
            schemaless_writer(out, version.parsed, record)
            name, read = c.decode(SINGLE_OBJECT_MARKER + version.fingerprint + out.getvalue())
            assert name == version.name
            assert set(read) == {f["name"] for f in current.document["fields"]}


def test_versions_are_numbered_and_named() -> None:
    c = codec()
    response = [v for v in c.versions if v.name == "FlowResponse"]
    assert [v.version for v in response] == [1, 2]
    assert c.current("FlowResponse") == response[-1]
    assert response[-1].full_name == "io.waflow.FlowResponse"
    assert response[0].canonical.startswith('{"name":"io.waflow.FlowResponse"')


def test_the_consumers_guide_lists_every_fingerprint() -> None:
    from tests.conftest import ROOT

    guide = (ROOT / "docs" / "consumers.md").read_text()
    for version in codec().versions:
        if version.name != "ItemBatch":  # internal
            assert f"`{version.fingerprint.hex()}`" in guide, (version.name, version.version)
