"""The tables and views on the real engine, each on the sequence that used to mislead it: ties,
one delivery carrying two changes, out-of-order arrival, redeliveries, alerts at several
thresholds, and a generated day of flow sends, statuses and responses."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from infra.control.loadgen import Generator, funnel
from infra.core.clickhouse import migrate
from schemas import codec
from sink.batch import Consumed, cut
from sink.sends import cut_sends
from sink.writer import ClickHouseWriter, Engine
from streams.normalize import normalize
from streams.records import SCHEMA_OF, RawMeta

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FLOW = "7001"


class Loader:
    """Deliveries through normalize and the sink's writer, each at its own raw offset."""

    def __init__(self, client: Client, database: str) -> None:
        migrate(client, database)
        self.client, self.database = client, database
        self.engine = Engine(client, database, embedded=True)
        self.offset = 0

    async def deliver(self, *bodies: bytes, received_ms: int = 1_767_225_600_000) -> None:
        records = []
        for body in bodies:
            self.offset += 1
            meta = RawMeta("raw", self.offset % 3, self.offset, received_ms, f"r{self.offset}")
            for o in normalize(body, meta):
                value = codec().encode(SCHEMA_OF[o.kind], o.record)
                records.append(Consumed("typed", 0, self.offset, value))
        for batch in cut(records, NOW, in_engine=True).batches:
            await ClickHouseWriter(self.engine).write(batch)

    async def sends(self, records: list[bytes]) -> None:
        consumed = [Consumed("sends", 0, i, r) for i, r in enumerate(records)]
        for batch in cut_sends(consumed, NOW).batches:
            await ClickHouseWriter(self.engine).write(batch)

    def rows(self, sql: str) -> list[list[Any]]:
        return [list(r) for r in self.client.query(sql.format(db=self.database)).result_rows]


@pytest.fixture
def loader(chdb_client: Client) -> Loader:
    return Loader(chdb_client, "waflow")


def delivery(t: int, *values: dict[str, Any], waba: str = "w1") -> bytes:
    changes = [{"field": "flows", "value": {"flow_id": FLOW, "message": "m", **v}} for v in values]
    return orjson.dumps({"entry": [{"id": waba, "time": t, "changes": changes}]})


def status(old: str | None, new: str) -> dict[str, Any]:
    return {"event": "FLOW_STATUS_CHANGE", "old_status": old, "new_status": new}


def alert(state: str, threshold: float, name: str = "ENDPOINT_ERROR_RATE") -> dict[str, Any]:
    return {"event": name, "alert_state": state, "threshold": threshold, "error_rate": 12.5}


@pytest.mark.parametrize("run", range(6))
async def test_created_and_published_in_one_delivery_is_published(loader: Loader, run: int) -> None:
    """The two changes share the entry's time; their order in the delivery decides, in every
    arrival order of the surrounding deliveries."""
    bodies = [
        delivery(1000, status(None, "DRAFT"), status("DRAFT", "PUBLISHED")),
        delivery(900, status(None, "DRAFT"), waba="w0"),  # an older event of the same flow
    ]
    random.Random(run).shuffle(bodies)
    for body in bodies:
        await loader.deliver(body)
    assert loader.rows("SELECT status, previous_status FROM {db}.flow_status_current") == [
        ["PUBLISHED", "DRAFT"]
    ]


async def test_status_and_previous_status_come_from_the_same_row(loader: Loader) -> None:
    """The latest event has no old_status: argMax over each column alone would take the
    previous row's old_status, since it skips NULLs."""
    await loader.deliver(delivery(1000, status("DRAFT", "PUBLISHED")))
    await loader.deliver(delivery(2000, status(None, "BLOCKED")))
    assert loader.rows("SELECT status, previous_status FROM {db}.flow_status_current") == [
        ["BLOCKED", None]
    ]


async def test_out_of_order_arrival_and_a_redelivery_change_nothing(loader: Loader) -> None:
    late = delivery(2000, status("DRAFT", "PUBLISHED"))
    await loader.deliver(late)
    await loader.deliver(delivery(1000, status(None, "DRAFT")))  # arrives after, happened before
    await loader.deliver(late, received_ms=1_767_300_000_000)  # redelivered a day later
    assert loader.rows("SELECT status FROM {db}.flow_status_current") == [["PUBLISHED"]]
    assert loader.rows("SELECT count(), uniqExact(event_id) FROM {db}.flow_events") == [[2, 2]]


async def test_alerts_escalating_then_recovering_at_each_threshold(loader: Loader) -> None:
    await loader.deliver(delivery(1000, alert("ACTIVATED", 5)))
    await loader.deliver(delivery(2000, alert("ACTIVATED", 10)))
    await loader.deliver(delivery(3000, alert("DEACTIVATED", 10)))
    # 10 % recovered, 5 % still breached.
    assert loader.rows("SELECT threshold, toUnixTimestamp(since) FROM {db}.flow_alerts_active") == [
        [5.0, 1000]
    ]
    episodes = (
        "SELECT threshold, toUnixTimestamp(started_at), duration_s "
        "FROM {db}.flow_alert_episodes ORDER BY started_at"
    )
    assert loader.rows(episodes) == [[5.0, 1000, None], [10.0, 2000, 1000]]
    await loader.deliver(delivery(4000, alert("DEACTIVATED", 5)))
    assert loader.rows("SELECT count() FROM {db}.flow_alerts_active") == [[0]]
    assert loader.rows(episodes) == [[5.0, 1000, 3000], [10.0, 2000, 1000]]
    # The timeline's durations run to the next change at the same threshold.
    timeline = loader.rows(
        "SELECT threshold, alert_state, duration_s FROM {db}.flow_alert_timeline "
        "ORDER BY started_at"
    )
    assert timeline == [
        [5.0, "ACTIVATED", 3000],
        [10.0, "ACTIVATED", 1000],
        [10.0, "DEACTIVATED", None],
        [5.0, "DEACTIVATED", None],
    ]


async def test_a_repeated_activation_is_one_episode(loader: Loader) -> None:
    for t, state in ((1000, "ACTIVATED"), (1500, "ACTIVATED"), (2000, "DEACTIVATED")):
        await loader.deliver(delivery(t, alert(state, 10)))
    assert loader.rows(
        "SELECT toUnixTimestamp(started_at), duration_s FROM {db}.flow_alert_episodes"
    ) == [[1000, 1000]]


async def test_a_generated_day_of_sends_statuses_and_responses(loader: Loader) -> None:
    gen = Generator(seed=4, wabas=3, run="funnel")
    day = funnel(gen, ("f1", "f2", "f3"), 300, 1_767_225_600)
    await loader.sends(list(day.sends))
    for i in range(0, len(day.bodies), 50):
        await loader.deliver(*day.bodies[i : i + 50])
    rows = loader.rows(
        "SELECT flow_id, sent, delivered, read, responded, completion_rate FROM {db}.flow_funnel"
    )
    got = {
        r[0]: dict(zip(("sent", "delivered", "read", "responded"), r[1:5], strict=True))
        for r in rows
    }
    assert got == day.expected
    for flow_id, sent, _, _, responded, rate in rows:
        assert rate == round(responded / sent, 4), flow_id
    # Responses per flow per day: each response resolved to its flow through its send.
    daily = loader.rows(
        "SELECT flow_id, sum(responses) FROM {db}.flow_responses_daily GROUP BY flow_id"
    )
    assert {f: n for f, n in daily} == {f: c["responded"] for f, c in day.expected.items()}
    values = loader.rows(
        "SELECT DISTINCT flow_id FROM {db}.flow_response_values WHERE field = 'rating'"
    )
    assert {f for (f,) in values} == set(day.expected)
    # Statuses as a table, BSUID recipients included, number withheld for username users.
    statuses = loader.rows(
        "SELECT status, count(), countIf(recipient_user_id IS NOT NULL), "
        "countIf(recipient_id IS NULL) > 0 "
        "FROM {db}.message_statuses GROUP BY status ORDER BY status"
    )
    sent = sum(c["sent"] for c in day.expected.values())
    assert statuses[2][:3] == ["sent", sent, sent] and statuses[2][3] == 1


async def test_the_token_rule_names_the_flow_when_no_send_does(loader: Loader) -> None:
    import re

    from streams.policy import Policy

    policy = Policy(re.compile(r"^(?P<flow>\d+):"))
    gen = Generator(seed=2, wabas=1, run="tok")
    change, _ = gen.flow_response(1_767_225_600)
    reply = change["value"]["messages"][0]["interactive"]["nfm_reply"]
    reply["response_json"] = orjson.dumps({"flow_token": "4242:abc", "a": 1}).decode()
    body = orjson.dumps({"entry": [{"id": "w", "time": 1, "changes": [change]}]})
    [out] = [policy.apply(o) for o in normalize(body, RawMeta("raw", 0, 1, 1, "r"))]
    assert out.record["flow_id"] == "4242"
    value = codec().encode("FlowResponse", out.record)
    for batch in cut([Consumed("typed", 0, 1, value)], NOW, in_engine=True).batches:
        await ClickHouseWriter(loader.engine).write(batch)
    assert loader.rows("SELECT flow_id FROM {db}.flow_responses_resolved") == [["4242"]]


async def test_every_table_holds_each_id_once_after_replays_and_rebatched_redeliveries(
    loader: Loader,
) -> None:
    gen = Generator(seed=9, wabas=4, run="once")
    day = funnel(gen, ("f1",), 60, 1_767_225_600)
    bodies = [gen.delivery(1_767_225_600 + i, max_items=20).body for i in range(80)]
    bodies += list(day.bodies)
    await loader.sends(list(day.sends))
    await loader.deliver(*bodies)
    # A replay of the same window: the same raw records again.
    loader.offset -= len(bodies)
    await loader.deliver(*bodies)
    # Re-batched redeliveries a day later: the same items, new raw records, new receive time.
    entries = [e for b in bodies[:40] for e in orjson.loads(b)["entry"]]
    rebatched = [
        orjson.dumps({"object": "whatsapp_business_account", "entry": entries[i : i + 7]})
        for i in range(0, len(entries), 7)
    ]
    await loader.deliver(*rebatched, received_ms=1_767_312_000_000)
    await loader.sends(list(day.sends))  # the business sends its sends twice
    for table, key in (
        ("flow_responses", "message_id"),
        ("flow_events", "event_id"),
        ("webhook_changes", "change_id"),
        ("dead_letters", "dead_letter_id"),
        ("message_statuses", "change_id"),
        ("flow_sends", "send_id"),
    ):
        [[count, unique]] = loader.rows(f"SELECT count(), uniqExact({key}) FROM {{db}}.{table}")
        assert count == unique, table
