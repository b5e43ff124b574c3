"""No input, however large, stops a partition: a signed 3.9 MiB body that is not JSON and a
delivery with one 2 MB item become dead letters, and the deliveries behind them become rows,
with the stream worker never restarting."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import orjson

from infra.control.loadgen import Generator
from infra.core import kafka
from ingest.producer import KafkaRawWriter
from ingest.routes import create_app
from ingest.verify import sign
from sink import query as sink_query
from tests.integration.stages import Stage, stream_stack


def big_flow_response(size: int) -> bytes:
    response = {"flow_token": "big", "answer": "x" * size}
    message = {
        "from": "16505551234",
        "id": f"wamid.big-{uuid.uuid4().hex}",
        "timestamp": "1700000000",
        "type": "interactive",
        "interactive": {
            "type": "nfm_reply",
            "nfm_reply": {"name": "flow", "response_json": orjson.dumps(response).decode()},
        },
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "1", "phone_number_id": "2"},
        "messages": [message],
    }
    doc = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "777", "changes": [{"field": "messages", "value": value}]}],
    }
    return orjson.dumps(doc)


async def test_huge_and_oversized_inputs_become_dead_letters_and_traffic_flows(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env, settings, _ = await stream_stack(kafka_bootstrap, tmp_path)
    stages = [Stage(n, env, tmp_path / f"{n}.log").start() for n in ("streams", "sink")]
    try:
        writer = KafkaRawWriter(kafka.producer(settings), settings.topics.raw, 30)
        await writer.start(attempts=30)
        app = create_app(settings, writer)
        gen = Generator(seed=11, wabas=1, run=uuid.uuid4().hex[:6])
        after = [gen.delivery(int(time.time()), max_items=1) for _ in range(5)]
        huge = b"\x00not json " + b"y" * (3_900 * 1024)
        bodies = [huge, big_flow_response(2 * 1024 * 1024), *(d.body for d in after)]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for body in bodies:
                signature = {"x-hub-signature-256": sign(body, b"shop-secret")}
                r = await c.post("/webhook", content=body, headers=signature)
                assert r.status_code == 200
        await writer.stop()
        responses = sum(len(d.responses) for d in after)
        sql = (
            "SELECT (SELECT count() FROM waflow.flow_responses), "
            "(SELECT groupArray(reason) FROM (SELECT reason FROM waflow.dead_letters "
            "ORDER BY reason))"
        )
        found: object = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                answer = sink_query.post(settings, sql, timeout=30)
                found = answer.json()["rows"] if answer.status_code == 200 else answer.text
                if found == [[responses, ["invalid_json", "too_large"]]]:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        logs = "\n".join(s.tail() for s in stages)
        assert found == [[responses, ["invalid_json", "too_large"]]], logs
        assert all(s.proc is not None and s.proc.poll() is None for s in stages), logs
        dead = sink_query.post(
            settings, "SELECT max(length(payload)), max(source_offset) FROM waflow.dead_letters"
        ).json()["rows"]
        assert dead[0][0] <= settings.dlq_payload_bytes
    finally:
        for stage in stages:
            stage.stop()
