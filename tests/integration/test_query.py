"""`waflow query` through the sink's /query on the real embedded engine: read-only unless asked,
never the engine's file, URL or remote access, and only for the holder of the token."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from infra.control.cli import run_sql
from infra.core.clickhouse import connect, connect_readonly, migrate
from infra.core.errors import InfraError
from infra.core.settings import Settings
from sink.metrics import SinkMetrics
from sink.query import CONTENT_TYPE, token_path, write_token
from sink.server import query_app
from sink.writer import Engine
from tests.conftest import make_settings
from tests.integration.stages import free_port

COUNT = "SELECT count() FROM waflow.schema_migrations"
INSERT = "INSERT INTO waflow.schema_migrations (version, name) VALUES (99, 'by hand')"


@pytest.fixture
async def sink(chdb_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    settings = make_settings(
        WAFLOW_DATA_DIR=str(tmp_path / "data"),
        WAFLOW_SINK_PORT=str(free_port()),
        WAFLOW_CLICKHOUSE_URL=chdb_url,
    )
    client = connect(chdb_url)
    migrate(client, "waflow")
    engine = Engine(client, "waflow", embedded=True, reader=connect_readonly(chdb_url))
    app = query_app(engine, SinkMetrics(), write_token(settings.data_dir))
    server = uvicorn.Server(
        uvicorn.Config(app, port=settings.sink_port, log_config=None, lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield settings
    finally:
        server.should_exit = True
        await serving
        engine.close()


async def sql(settings: Settings, text: str, write: bool = False) -> list[list[object]]:
    return (await asyncio.to_thread(run_sql, settings, text, write))[1]


async def test_token_file_is_the_owners_alone(sink: Settings) -> None:
    mode = stat.S_IMODE(token_path(sink.data_dir).stat().st_mode)
    assert mode == 0o600


async def test_reads_work_and_writes_need_the_flag(sink: Settings) -> None:
    [[before]] = await sql(sink, COUNT)
    with pytest.raises(InfraError, match="readonly"):
        await sql(sink, INSERT)
    assert await sql(sink, COUNT) == [[before]]
    await sql(sink, INSERT, write=True)
    assert await sql(sink, COUNT) == [[int(str(before)) + 1]]


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM file('{secret}', 'LineAsString')",
        "SELECT file('{secret}')",
        "SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')",
        "SELECT * FROM remote('127.0.0.1:9000', system.one)",
        "SELECT 1 INTO/**/OUTFILE '{out}'",
        "INSERT INTO FUNCTION file('{out}', 'LineAsString') SELECT 'x'",
        "CREATE TABLE waflow.leak (s String) ENGINE = File(LineAsString, '{secret}')",
    ],
)
@pytest.mark.parametrize("write", [False, True])
async def test_files_urls_and_other_servers_are_refused_even_with_writes(
    sink: Settings, tmp_path: Path, statement: str, write: bool
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("private\n")
    out = tmp_path / "out.txt"
    with pytest.raises(InfraError, match=r"refused: .* reach"):
        await sql(sink, statement.format(secret=secret, out=out), write=write)
    assert not out.exists()


async def test_requests_without_the_credential_or_from_a_page_are_refused(
    sink: Settings,
) -> None:
    url = f"http://127.0.0.1:{sink.sink_port}/query"
    token = token_path(sink.data_dir).read_text()
    good = {"authorization": f"Bearer {token}", "content-type": CONTENT_TYPE}
    cases = {
        "no token": ({"content-type": CONTENT_TYPE}, 401),
        "wrong token": ({**good, "authorization": "Bearer " + "x" * len(token)}, 401),
        "foreign host": ({**good, "host": "attacker.example:8082"}, 403),
        "no-cors body": ({**good, "content-type": "text/plain"}, 415),
    }
    async with httpx.AsyncClient() as c:
        for name, (headers, status) in cases.items():
            r = await c.post(url, content=b"DROP TABLE waflow.schema_migrations", headers=headers)
            assert r.status_code == status, name
        assert (await c.post(url, content=COUNT.encode(), headers=good)).status_code == 200


async def test_reconcile_quoting_reads_back_as_the_same_string_in_the_engine(
    sink: Settings,
) -> None:
    from infra.control.reconcile import _quote

    hostile = ["plain", "it's", "back\\slash", "\\'", "wamid.HBgL==", "名前"]
    for value in hostile:
        assert await sql(sink, f"SELECT {_quote(value)}") == [[value]]


async def test_a_format_clause_prints_as_clickhouse_client_does(sink: Settings) -> None:
    query = "SELECT toUInt8(number) AS n, toString(number) AS s FROM system.numbers LIMIT 3"
    csv = await asyncio.to_thread(run_sql, sink, f"{query} FORMAT CSV")
    assert csv == b'0,"0"\n1,"1"\n2,"2"\n'
    lines = await asyncio.to_thread(run_sql, sink, query, False, "JSONEachRow")
    assert isinstance(lines, bytes) and lines.splitlines()[0] == b'{"n":0,"s":"0"}'
    # A FORMAT word inside a string or a comment is not a clause.
    plain = await asyncio.to_thread(run_sql, sink, "SELECT 'x FORMAT CSV' -- FORMAT CSV")
    assert plain == (["'x FORMAT CSV'"], [["x FORMAT CSV"]])


async def test_without_a_sink_the_engine_is_opened_directly_with_formats(
    chdb_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        WAFLOW_DATA_DIR=str(tmp_path / "alone"),
        WAFLOW_SINK_PORT=str(free_port()),
        WAFLOW_CLICKHOUSE_URL=chdb_url,
    )
    assert await asyncio.to_thread(run_sql, settings, "SELECT 7 FORMAT TSV") == b"7\n"


async def test_a_starting_sink_is_waited_for(chdb_url: str, tmp_path: Path) -> None:
    """The token is written (a sink has started here) but nothing listens yet: the query
    waits for the sink instead of opening the engine the sink is about to hold."""
    settings = make_settings(
        WAFLOW_DATA_DIR=str(tmp_path / "data"),
        WAFLOW_SINK_PORT=str(free_port()),
        WAFLOW_CLICKHOUSE_URL=chdb_url,
    )
    token = write_token(settings.data_dir)
    client = connect(chdb_url)
    migrate(client, "waflow")
    engine = Engine(client, "waflow", embedded=True, reader=connect_readonly(chdb_url))
    asking = asyncio.create_task(asyncio.to_thread(run_sql, settings, "SELECT 42", False, "", 20))
    await asyncio.sleep(1.5)
    assert not asking.done()
    app = query_app(engine, SinkMetrics(), token)
    server = uvicorn.Server(
        uvicorn.Config(app, port=settings.sink_port, log_config=None, lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    try:
        assert await asking == (["42"], [[42]])
    finally:
        server.should_exit = True
        await serving
        engine.close()
