from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

import pytest
from clickhouse_connect.driver.client import Client

from schemas import codec
from sink.batch import Consumed, cut
from sink.errors import EngineRefused
from sink.writer import ClickHouseWriter, Engine
from streams.normalize import normalize
from streams.records import SCHEMA_OF, RawMeta

META = RawMeta("waflow.webhooks.raw", 0, 1, 1_700_000_000_000, "r")


async def test_a_server_refuses_avro_batches_so_python_decodes_them(
    payloads: dict[str, bytes],
) -> None:
    """A server cannot read the sink's files: the writer refuses before touching the client."""
    [out] = normalize(payloads["flow_response.json"], META)
    value = codec().encode(SCHEMA_OF[out.kind], out.record)
    [batch] = cut([Consumed("t", 0, 1, value)], datetime.now(UTC), in_engine=True).batches
    engine = Engine(cast(Client, object()), "db", embedded=False)
    try:
        with pytest.raises(EngineRefused):
            await ClickHouseWriter(engine).write(batch)
    finally:
        engine._thread.shutdown()


def test_only_refusals_of_the_data_are_permanent() -> None:
    from sink.writer import refused_for_good

    assert refused_for_good(RuntimeError("Code: 53. DB::Exception: Type mismatch"))
    assert refused_for_good(RuntimeError("Code: 395. waflow: a row fails the sink checks"))
    assert refused_for_good(TypeError("cannot convert"))  # the driver, converting a value
    for passing in (
        "Code: 252. DB::Exception: Too many parts",
        "Code: 241. DB::Exception: Memory limit exceeded",
        "Code: 60. DB::Exception: Unknown table",  # a migration not applied yet
        "Connection refused",
    ):
        assert not refused_for_good(RuntimeError(passing)), passing
