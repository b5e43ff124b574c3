"""The whole path on real parts: signed POST -> raw topic -> Faust worker -> typed Avro topics ->
sink -> embedded ClickHouse, with redeliveries (one re-batched) yielding one row per item."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from infra.control.lag import lag
from infra.control.loadgen import Generator
from infra.control.replay import Selection, replay
from infra.core import kafka
from infra.core.settings import Settings
from infra.core.topics import ensure_topics
from ingest.producer import KafkaRawWriter
from ingest.routes import create_app
from ingest.verify import sign
from schemas.catalog import KINDS, Kind, columns
from sink import query as sink_query
from tests.conftest import ROOT
from tests.integration.stages import Stage, free_port, read_typed, stage_env

F1, F2 = "691244242662581", "6627390910605886"
# From the documentation's examples (../shared/payloads): integers where it printed integers,
# stored as doubles; the nested errors as parallel arrays.
EXPECTED_EVENTS = [
    ["CLIENT_ERROR_RATE", F1, None, None, "ACTIVATED", 10.0, 14.28, None, None, None, None,
     ["INVALID_SCREEN_TRANSITION", "PUBLIC_KEY_MISSING"], [66.66, 33.33], [2, 1]],
    ["ENDPOINT_AVAILABILITY", "12345678", None, None, "ACTIVATED", 90.0, None, None, None, None,
     75.0, [], [], []],
    ["ENDPOINT_ERROR_RATE", F1, None, None, "ACTIVATED", 10.0, 14.28, None, None, None, None,
     ["CAPABILITY_ERROR", "TIMEOUT"], [66.66, 33.33], [2, 1]],
    ["ENDPOINT_LATENCY", F1, None, None, "ACTIVATED", 7000.0, None, 500.0, 8000.0, 34, None,
     [], [], []],
    ["FLOW_STATUS_CHANGE", F2, None, "DRAFT", None, None, None, None, None, None, None,
     [], [], []],
    ["FLOW_STATUS_CHANGE", F2, "DRAFT", "PUBLISHED", None, None, None, None, None, None, None,
     [], [], []],
]  # fmt: skip


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data = tmp_path_factory.mktemp("stack")
    env = stage_env(kafka_bootstrap, data)
    settings = Settings.from_env(env)
    asyncio.run(ensure_topics(settings))
    stages = [Stage(name, env, data / f"{name}.log").start() for name in ("streams", "sink")]
    try:
        yield settings
    finally:
        for stage in stages:
            stage.stop()
            if "Traceback" in stage.tail():
                print(f"--- {stage.stage} log ---\n{stage.tail()}")


def query(settings: Settings, sql: str, write: bool = False) -> list[list[object]]:
    r = sink_query.post(settings, sql, write=write, timeout=30)
    r.raise_for_status()
    return list(r.json()["rows"])


def wait_for(settings: Settings, sql: str, expected: object, timeout_s: float = 120) -> object:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = query(settings, sql)
            if last == expected:
                return last
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return last


async def test_signed_posts_become_rows_once(stack: Settings, payloads: dict[str, bytes]) -> None:
    writer = KafkaRawWriter(kafka.producer(stack), stack.topics.raw, 10)
    await writer.start(attempts=30)
    app = create_app(stack, writer)
    gen = Generator(seed=7, wabas=3, run=uuid.uuid4().hex[:6])
    batch = gen.delivery(int(time.time()), max_items=1)
    doc = orjson.loads(batch.body)
    extra = gen.delivery(int(time.time()), max_items=1)
    # Re-batched redelivery: the same item behind another WABA's entry, so another partition key.
    rebatched = orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": orjson.loads(extra.body)["entry"] + doc["entry"],
        }
    )
    bodies = [*payloads.values(), batch.body, batch.body, batch.body, rebatched, b"{not json"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for body in bodies:
            r = await c.post(
                "/webhook",
                content=body,
                headers={"x-hub-signature-256": sign(body, b"shop-secret")},
            )
            assert r.status_code == 200
    await writer.stop()

    responses = 1 + len(batch.responses) + len(extra.responses)
    events_total = 6 + batch.events + extra.events
    others = batch.others + extra.others
    found = wait_for(
        stack,
        "SELECT (SELECT count() FROM waflow.flow_responses), "
        "(SELECT count() FROM waflow.flow_events), "
        "(SELECT count() FROM waflow.webhook_changes), "
        "(SELECT count() FROM waflow.dead_letters)",
        [[responses, events_total, others, 1]],
    )
    assert found == [[responses, events_total, others, 1]]
    row = query(
        stack,
        "SELECT waba_id, wa_id, contact_name, flow_token, response_json, "
        "toUnixTimestamp(responded_at) FROM waflow.flow_responses "
        "WHERE waba_id = '102290129340398'",
    )
    assert row == [
        [
            "102290129340398",
            "16505551234",
            "Sheena Nelson",
            "AQAAAAACS5FpgQ_cAAAAAD0QI3s.",
            orjson.loads(payloads["flow_response.json"])["entry"][0]["changes"][0]["value"][
                "messages"
            ][0]["interactive"]["nfm_reply"]["response_json"],
            1714510003,
        ]
    ]
    dead = query(stack, "SELECT stage, reason, payload FROM waflow.dead_letters")
    assert dead == [["streams", "invalid_json", "{not json"]]
    assert query(stack, "SELECT count() = uniqExact(message_id) FROM waflow.flow_responses") == [
        [1]
    ]

    # Every flow event sample, field by field as the documentation's example shows it.
    events = query(
        stack,
        "SELECT event, flow_id, old_status, new_status, alert_state, threshold, error_rate, "
        "p50_latency, p90_latency, requests_count, availability, errors.error_type, "
        "errors.error_rate, errors.error_count FROM waflow.flow_events "
        "WHERE waba_id IN ('106181168862417', '644600416743275') ORDER BY event, new_status",
    )
    assert events == EXPECTED_EVENTS

    # The typed topics carry one Avro record per item, decodable with the documented decoder.
    t = stack.topics
    seen = await read_typed(
        stack.kafka_bootstrap, [t.responses, t.events], responses + events_total
    )
    ids = [dedup_id for dedup_id, _ in seen]
    assert len(ids) == len(set(ids)) == responses + events_total


CONSUMERS = ROOT / "infra" / "consumers"


def java_consumer() -> list[str]:
    """Build the Java example with Maven (fails loudly without it) and return its command."""
    project = CONSUMERS / "java"
    build = ["mvn", "-q", "-B", "package", "dependency:copy-dependencies"]
    done = subprocess.run(
        [*build, "-DoutputDirectory=target/lib"], cwd=project, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    classpath = f"{project / 'target' / 'classes'}:{project / 'target' / 'lib'}/*"
    return ["java", "-cp", classpath, "io.waflow.consumer.Consume"]


def consumed(command: list[str], settings: Settings) -> list[dict[str, Any]]:
    t = settings.topics
    args = [settings.kafka_bootstrap, t.schemas, *t.sink_inputs]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [orjson.loads(line) for line in done.stdout.splitlines()]


def flattened(kind: Kind, record: dict[str, Any]) -> dict[str, Any]:
    """A decoded record as its table's columns (schemas/catalog.py)."""
    out = {}
    for c in columns(kind.schema):
        if c.many:
            out[c.name] = [item[c.sub] for item in record[c.field]]
        elif c.sub is not None:
            out[c.name] = record[c.field][c.sub]
        else:
            out[c.name] = record[c.field]
    return out


async def test_the_schemas_topic_holds_every_writer_schema(stack: Settings) -> None:
    """Filled by the stream stage before its first record; read back as `waflow schemas` does."""
    from infra.core import schemas_topic
    from schemas.codec import codec

    published = await schemas_topic.read(stack)
    assert {p["fingerprint"] for p in published} == {v.fingerprint.hex() for v in codec().versions}
    current = {p["name"]: p["version"] for p in published if p["version"] == 2}
    assert set(current) >= {"io.waflow.FlowResponse", "io.waflow.DeadLetter"}


async def test_independent_consumers_read_what_clickhouse_holds(stack: Settings) -> None:
    """A Java consumer (Apache Avro) and a Python one (fastavro), importing nothing of waflow,
    read every typed topic with the schemas from the schemas topic; every field of every record
    equals its row in ClickHouse."""
    await sink_caught_up(stack)
    python = [sys.executable, str(CONSUMERS / "python" / "consume.py")]
    readers = {"java": consumed(java_consumer(), stack), "python": consumed(python, stack)}
    by_topic = {stack.topics.typed(k.kind): k for k in KINDS}
    compared = 0
    for kind in KINDS:
        cols = columns(kind.schema)
        select = ", ".join(
            f"toUnixTimestamp64Milli(`{c.name}`)" if c.time
            else "base64Encode(`payload`)" if c.name == "payload"
            else f"`{c.name}`"
            for c in cols
        )  # fmt: skip
        rows = query(stack, f"SELECT {select} FROM waflow.{kind.table}")
        table = {row[0]: dict(zip([c.name for c in cols], row, strict=True)) for row in rows}
        compared += bool(table)
        for reader, lines in readers.items():
            mine = [x for x in lines if by_topic[x["topic"]] == kind]
            assert {x["record"][kind.id_field] for x in mine} == set(table), (reader, kind)
            for line in mine:
                assert line["name"] == f"io.waflow.{kind.schema}"
                record = flattened(kind, line["record"])
                assert record == table[record[kind.id_field]], (reader, kind.table)
    assert compared >= 3  # responses, events and dead letters at least
    java, python_ = (
        [orjson.dumps(x, option=orjson.OPT_SORT_KEYS) for x in r] for r in readers.values()
    )
    assert sorted(java) == sorted(python_)  # the same records, whatever the partition order


COUNTS = (
    "SELECT (SELECT count() FROM waflow.flow_responses), "
    "(SELECT uniqExact(message_id) FROM waflow.flow_responses), "
    "(SELECT count() FROM waflow.flow_events), (SELECT count() FROM waflow.webhook_changes), "
    "(SELECT count() FROM waflow.dead_letters)"
)


async def sink_caught_up(settings: Settings, timeout_s: float = 90) -> None:
    """Until the sink group has committed every record on the typed topics and the DLQ."""
    deadline = time.monotonic() + timeout_s
    behind: dict[tuple[str, str], int] = {}
    while time.monotonic() < deadline:
        behind = {k: v for k, v in (await lag(settings)).items() if k[0].endswith("-sink")}
        if behind and not any(behind.values()):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"sink still behind: {behind}")


async def test_replay_twice_creates_no_row_and_restores_deleted_rows(stack: Settings) -> None:
    await sink_caught_up(stack)
    [before] = query(stack, COUNTS)
    assert before[0] > 0 and before[0] == before[1]
    now = int(time.time() * 1000)
    for _ in range(2):
        report = await replay(stack, now - 3_600_000, now)
        assert report.raw_records == report.total > 0
        assert report.sent["responses"] >= before[1] and report.sent["dlq"] == 1
        await sink_caught_up(stack)
        assert query(stack, COUNTS) == [before]

    # A fix reaches old rows by deleting them, then replaying only what they came from.
    waba = "102290129340398"
    query(stack, f"DELETE FROM waflow.flow_responses WHERE waba_id = '{waba}'", write=True)
    assert query(stack, COUNTS)[0][0] == before[0] - 1
    report = await replay(stack, now - 3_600_000, now, Selection(waba=waba))
    assert dict(report.sent) == {"responses": 1} and report.skipped > 0
    await sink_caught_up(stack)
    assert query(stack, COUNTS) == [before]


def test_status_screen_shows_the_running_stack(stack: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WAFLOW_")},
        **stage_env(stack.kafka_bootstrap, stack.data_dir),
        "WAFLOW_TOPIC_PREFIX": stack.topics.prefix,
        "WAFLOW_STREAMS_PORT": str(stack.streams_port),
        "WAFLOW_SINK_PORT": str(stack.sink_port),
        "WAFLOW_HTTP_PORT": str(port),
        "WAFLOW_INGEST_ADMIN_PORT": str(free_port()),
    }
    ingest = Stage("ingest", env, tmp_path / "ingest.log").start()
    try:
        url = f"http://127.0.0.1:{port}"
        admin = f"http://127.0.0.1:{env['WAFLOW_INGEST_ADMIN_PORT']}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{admin}/readyz").status_code == 200:
                    break
            time.sleep(0.3)
        body = b'{"object": "whatsapp_business_account", "entry": []}'
        signature = {"x-hub-signature-256": sign(body, b"shop-secret")}
        for _ in range(20):
            assert httpx.post(f"{url}/webhook", content=body, headers=signature).is_success
        assert httpx.post(f"{url}/webhook", content=body).status_code == 401
        # Probes and Prometheus use the admin listener; the public one serves the webhook only.
        for path in ("/metrics", "/healthz", "/readyz"):
            assert httpx.get(f"{url}{path}").status_code == 404
        assert "waflow_ingest_requests_total" in httpx.get(f"{admin}/metrics").text
        for stage_port in (stack.streams_port, stack.sink_port):
            assert httpx.get(f"http://127.0.0.1:{stage_port}/readyz").status_code == 200
            assert httpx.get(f"http://127.0.0.1:{stage_port}/healthz").text == "ok"
        screen = subprocess.run(
            [sys.executable, "-m", "infra.control.cli", "status", "--once", "--interval", "1"],
            env={**env, "COLUMNS": "160"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        ingest.stop()
    print(screen.stdout)
    assert screen.returncode == 0, screen.stderr
    out = screen.stdout
    for stage in ("ingest", "streams", "sink"):
        assert re.search(rf"{stage}\s+│\s+up", out), out
    assert "down" not in out and "did not answer" not in out
    assert "target p50 < 250 ms" in out
    [rows] = query(stack, COUNTS)
    assert re.search(rf"flow_responses\s+│\s+{rows[0]:,}", out), out
    assert re.search(r"dead letters: streams / invalid_json\s+│\s+1\b", out), out
    for topic in (stack.topics.raw, stack.topics.responses, stack.topics.dlq):
        assert topic in out


def test_every_stage_logs_json_lines_at_the_configured_level(stack: Settings) -> None:
    # Faust's worker used to replace the JSON handler with its own and set the root logger to
    # DEBUG: unmasked text lines, and a log record built for every produced message.
    lines = {s: (stack.data_dir / f"{s}.log").read_text().splitlines() for s in ("streams", "sink")}
    assert any("dead letter" in line for line in lines["streams"])  # the invalid_json delivery
    for stage_lines in lines.values():
        for line in stage_lines:
            record = orjson.loads(line)  # raises on a line that is not JSON
            assert record["level"] in ("warning", "error", "critical"), line
