"""Realistic deliveries for the demo, benchmarks and the chaos suite.

Shaped like the platform's real traffic: mostly single-item deliveries, some batches of up to
100 items across several WABAs, flow responses beside text messages, statuses and flow events,
unicode in names and answers. Every item id is unique, so totals can be checked exactly.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

import orjson

NAMES = (
    "Sheena Nelson",
    "José Álvarez",
    "Zoë Ñúñez",
    "Łukasz Żółć",
    "李小龍",
    "Ayşe Yılmaz",
    "Ольга",
    "محمد",
    'O\'Brien "Bob"',
)
ANSWERS = ("Sí, por favor ✅", "Très bien", "5 ⭐", "email@example.com", "non", "नमस्ते")
EVENTS = (
    "FLOW_STATUS_CHANGE",
    "CLIENT_ERROR_RATE",
    "ENDPOINT_ERROR_RATE",
    "ENDPOINT_LATENCY",
    "ENDPOINT_AVAILABILITY",
    "FLOW_VERSION_EXPIRY_WARNING",
)


@dataclass(frozen=True)
class Delivery:
    body: bytes
    responses: tuple[str, ...]  # message ids of flow responses
    events: int
    others: int

    @property
    def items(self) -> int:
        return len(self.responses) + self.events + self.others


class Generator:
    def __init__(self, seed: int = 1, wabas: int = 50, run: str = "r", hot: float = 0.0) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - test data, not secrets
        self.wabas = [str(100000000000000 + i) for i in range(wabas)]
        self.counter = itertools.count()
        self.run = run
        self.hot = hot  # the share of deliveries from the first WABA (a dominant tenant)

    def delivery(self, now_s: int, max_items: int = 100) -> Delivery:
        """Mostly one item; one delivery in ten carries 2..max_items items."""
        n = 1 if self.rng.random() < 0.9 or max_items < 2 else self.rng.randint(2, max_items)
        entries: list[dict[str, Any]] = []
        responses: list[str] = []
        events = others = 0
        hot = bool(self.hot) and self.rng.random() < self.hot  # no draw without a hot tenant
        for _ in range(n):
            waba = self.wabas[0] if hot else self.rng.choice(self.wabas)
            roll = self.rng.random()
            if roll < 0.6:
                change, message_id = self.flow_response(now_s)
                responses.append(message_id)
            elif roll < 0.75:
                change = self.flow_event(now_s)
                events += 1
            else:
                change = self.other(now_s)
                others += 1
            entries.append({"id": waba, "time": now_s, "changes": [change]})
        doc = {"object": "whatsapp_business_account", "entry": entries}
        return Delivery(orjson.dumps(doc), tuple(responses), events, others)

    def _id(self) -> str:
        return f"wamid.{self.run}.{next(self.counter):012d}"

    def flow_response(self, now_s: int) -> tuple[dict[str, Any], str]:
        message_id = self._id()
        user = self.rng.randint(0, 9999)
        wa_id = str(16505550000 + user)
        answer = {
            "flow_token": f"tok-{self.rng.randint(1, 20)}",
            "choice": self.rng.choice(ANSWERS),
            "rating": self.rng.randint(1, 5),
        }
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": "15550783881",
                "phone_number_id": "106540352242922",
            },
            "contacts": [{"profile": {"name": self.rng.choice(NAMES)}, "wa_id": wa_id}],
            "messages": [
                {
                    "context": {"from": "15550783881", "id": f"wamid.ctx.{message_id}"},
                    "from": wa_id,
                    "from_user_id": f"US.{13491208655302741918 + user}",
                    "id": message_id,
                    "timestamp": str(now_s),
                    "type": "interactive",
                    "interactive": {
                        "type": "nfm_reply",
                        "nfm_reply": {
                            "name": "flow",
                            "body": "Sent",
                            "response_json": orjson.dumps(answer).decode(),
                        },
                    },
                }
            ],
        }
        # Users as the platform sends them since 2026: a third by phone number only (as
        # before business-scoped user ids), a third by both, a third username users whose
        # number the platform withholds (BSUID only).
        contact, message = value["contacts"][0], value["messages"][0]
        if user % 3 == 0:
            del message["from_user_id"]
        else:
            contact["user_id"] = message["from_user_id"]
        if user % 3 == 2:
            del contact["wa_id"], message["from"]
            contact["profile"]["username"] = f"user.{user}"
        return {"value": value, "field": "messages"}, message_id

    def flow_event(self, now_s: int) -> dict[str, Any]:
        event = self.rng.choice(EVENTS)
        value: dict[str, Any] = {
            "event": event,
            "flow_id": str(self.rng.randint(1, 10**15)),
            "message": f"event {next(self.counter)} for {self.run}",
        }
        if event == "FLOW_STATUS_CHANGE":
            value.update(old_status="DRAFT", new_status="PUBLISHED")
        else:
            value.update(
                alert_state=self.rng.choice(("ACTIVATED", "DEACTIVATED")),
                threshold=10,
                error_rate=round(self.rng.uniform(0, 60), 2),
                errors=[{"error_type": "TIMEOUT", "error_rate": 33.33, "error_count": 1}],
            )
        return {"value": value, "field": "flows"}

    def other(self, now_s: int) -> dict[str, Any]:
        meta = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}
        if self.rng.random() < 0.5:
            item = {
                "from": "16505551234",
                "id": self._id(),
                "timestamp": str(now_s),
                "type": "text",
                "text": {"body": self.rng.choice(ANSWERS)},
            }
            value = {"messaging_product": "whatsapp", "metadata": meta, "messages": [item]}
        else:
            item = {
                "id": self._id(),
                "status": "delivered",
                "timestamp": str(now_s),
                "recipient_id": "16505551234",
            }
            value = {"messaging_product": "whatsapp", "metadata": meta, "statuses": [item]}
        return {"value": value, "field": "messages"}


@dataclass(frozen=True)
class Funnel:
    """A day of flow sends and what followed them, with the counts each flow must show."""

    sends: tuple[bytes, ...]  # JSON records for the flow sends topic (sink/sends.py)
    bodies: tuple[bytes, ...]  # deliveries: the sends' statuses and the flow responses
    expected: dict[str, dict[str, int]]  # flow id -> sent, delivered, read, responded


def funnel(gen: Generator, flows: tuple[str, ...], sends: int, day_s: int) -> Funnel:
    """Flow messages sent through the day, each then delivered (90 %), read (70 % of those)
    and answered (half of those, the response naming the sent message as its context)."""
    records, bodies = [], []
    expected = {f: dict.fromkeys(("sent", "delivered", "read", "responded"), 0) for f in flows}
    meta = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}
    for i in range(sends):
        flow, waba = gen.rng.choice(flows), gen.rng.choice(gen.wabas)
        at = day_s + i * (86_400 // max(sends, 1))
        wamid = f"wamid.{gen.run}.send.{i:06d}"
        user = gen.rng.randint(0, 9999)
        record = {"flow_id": flow, "message_id": wamid, "flow_token": f"{flow}:{gen.run}:{i}"}
        records.append(orjson.dumps({**record, "sent_at": at, "waba_id": waba}))
        reached = ["sent"]
        roll = gen.rng.random()
        if roll < 0.9:
            reached.append("delivered")
        if roll < 0.63:
            reached.append("read")
        answered = roll < 0.315
        statuses = []
        for step, status in enumerate(reached):
            item: dict[str, Any] = {
                "id": wamid,
                "status": status,
                "timestamp": str(at + 5 * step),
                "recipient_user_id": f"US.{13491208655302741918 + user}",
                "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility"},
            }
            if user % 3 != 2:  # a username user's number is withheld
                item["recipient_id"] = str(16505550000 + user)
            statuses.append(item)
        value = {"messaging_product": "whatsapp", "metadata": meta, "statuses": statuses}
        entry = {"id": waba, "time": at, "changes": [{"value": value, "field": "messages"}]}
        bodies.append(orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]}))
        if answered:
            change, _ = gen.flow_response(at + 60)
            message = change["value"]["messages"][0]
            message["context"]["id"] = wamid
            reply = message["interactive"]["nfm_reply"]
            answer = orjson.loads(reply["response_json"]) | {"flow_token": record["flow_token"]}
            reply["response_json"] = orjson.dumps(answer).decode()
            entry = {"id": waba, "time": at + 60, "changes": [change]}
            bodies.append(orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]}))
        counts = expected[flow]
        counts["sent"] += 1
        counts["delivered"] += "delivered" in reached
        counts["read"] += "read" in reached
        counts["responded"] += answered
    return Funnel(tuple(records), tuple(bodies), expected)
