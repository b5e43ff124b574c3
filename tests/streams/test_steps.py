"""The stream stage's steps against the fakes: what each sends for a batch, without Faust."""

from __future__ import annotations

from schemas import codec
from streams.items import unpack
from streams.metrics import StreamMetrics
from streams.steps import DedupStep, Message, NormalizeStep
from tests.fakes import FakeClaims, FakeOutputs, FakeSender

TOPICS = {"responses": "t.responses", "events": "t.events", "other": "t.other"}


def raw(offset: int, body: bytes) -> Message:
    return Message("t.raw", 0, offset, 1_700_000_000_000, b"k", body, {"waflow-request-id": b"r"})


async def normalized(payloads: dict[str, bytes], bodies: list[bytes]) -> FakeSender:
    sender = FakeSender()

    async def partitions() -> int:
        return 4

    step = NormalizeStep(sender, "t.dlq", "t.items", partitions, StreamMetrics())
    sent = await step.run([raw(i, body) for i, body in enumerate(bodies)])
    assert len(sent) == len(sender.sent)  # every send is handed back for the confirmation
    return sender


async def test_normalize_sends_dead_letters_and_packs_items_per_partition(
    payloads: dict[str, bytes],
) -> None:
    bodies = [payloads["flow_response.json"], payloads["endpoint_latency.json"], b"{not json"]
    sender = await normalized(payloads, bodies)
    [(_, _, dead, _)] = sender.to("t.dlq")
    assert codec().decode(dead)[1]["reason"] == "invalid_json"
    items = [i for _, _, value, p in sender.to("t.items") for i in unpack(value, {}, None)]
    assert sorted(i.kind for i in items) == ["events", "responses"]
    assert all(p is not None and 0 <= p < 4 for *_, p in sender.to("t.items"))


async def test_dedup_writes_first_sightings_once_and_dead_letters_strangers(
    payloads: dict[str, bytes],
) -> None:
    sender = await normalized(payloads, [payloads["flow_response.json"]])
    [(_, _, batch, partition)] = sender.to("t.items")
    items = [Message("t.items", partition or 0, n, 0, None, batch) for n in range(2)]
    stranger = Message("t.items", 0, 9, 0, None, b"\x00not an item batch")
    outputs, dlq, metrics = FakeOutputs(), FakeSender(), StreamMetrics()
    step = DedupStep(FakeClaims(), outputs, dlq, TOPICS, "t.dlq", 7 * 86_400_000, metrics)
    await step.run([*items, stranger], now_ms=1_700_000_000_000)
    assert [topic for topic, _, _ in outputs.added] == ["t.responses"]  # the copy was dropped
    assert outputs.writes == 1
    [(_, _, dead, _)] = dlq.to("t.dlq")
    assert codec().decode(dead)[1]["reason"] == "foreign_record"
    assert metrics.duplicates._value.get() == 1
    assert metrics.records_out.labels("t.responses")._value.get() == 1
