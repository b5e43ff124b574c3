"""Hostile input: whatever the bytes, normalize returns records that encode, or dead letters."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import codec
from streams.normalize import normalize
from streams.records import DLQ, EVENTS, SCHEMA_OF, Output, RawMeta

META = RawMeta("raw", 0, 0, 1_700_000_000_000, "r")
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "time",
                    "changes",
                    "field",
                    "value",
                    "messages",
                    "statuses",
                    "type",
                    "interactive",
                    "nfm_reply",
                    "response_json",
                    "timestamp",
                    "from",
                    "event",
                    "flow_id",
                    "errors",
                    "threshold",
                    "requests_count",
                    "contacts",
                    "x",
                ]
            ),
            inner,
            max_size=6,
        )
    ),
    max_leaves=30,
)


def check(body: bytes) -> list[str]:
    """Every output encodes with its schema and decodes back as the same kind; the kinds."""
    kinds = []
    for out in normalize(body, META):
        name, _ = codec().decode(codec().encode(SCHEMA_OF[out.kind], out.record))
        assert name == SCHEMA_OF[out.kind]
        kinds.append(out.kind)
    return kinds


def from_change(outputs: list[Output], path: str) -> list[Output]:
    """The outputs of the change at `path`: typed records by lineage, dead letters by path."""
    entry, change = (int(x) for x in path.split("."))
    out = []
    for o in outputs:
        if o.kind == DLQ:
            where = o.record["dead_letter_id"].split("/", 3)[3]
            if where == path or where.startswith(path + "."):
                out.append(o)
        elif (o.record["lineage"]["entry_index"], o.record["lineage"]["change_index"]) == (
            entry,
            change,
        ):
            out.append(o)
    return out


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_documents(doc: object) -> None:
    delivery = {
        "entry": [
            {
                "id": "w",
                "changes": [
                    {"field": "messages", "value": doc},
                    {"field": "flows", "value": doc},
                ],
            }
        ]
    }
    body = orjson.dumps(delivery)
    check(body)
    # A flows change always leaves a trace: one flow event, or one dead letter with its path.
    [traced] = from_change(normalize(body, META), "0.1")
    assert traced.kind in (EVENTS, DLQ)
    kinds = check(orjson.dumps(doc))
    if not (isinstance(doc, dict) and isinstance(doc.get("entry"), list)):
        assert kinds == [DLQ]  # not a delivery at all: one dead letter, never silence


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(body: bytes) -> None:
    kinds = check(body)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        assert kinds == [DLQ]  # not JSON: exactly one dead letter
        return
    if not (isinstance(doc, dict) and isinstance(doc.get("entry"), list)):
        assert kinds == [DLQ]


def test_deep_nesting_and_big_batches() -> None:
    check(b'{"entry":' + b"[" * 5000 + b"]" * 5000 + b"}")
    message = {
        "from": "1",
        "id": "m",
        "timestamp": "1",
        "type": "interactive",
        "interactive": {"type": "nfm_reply", "nfm_reply": {"response_json": "{}"}},
    }
    big = {
        "entry": [
            {
                "id": "w",
                "changes": [
                    {
                        "field": "messages",
                        "value": {"messages": [{**message, "id": f"m{i}"} for i in range(1000)]},
                    }
                ],
            }
        ]
    }
    assert len(normalize(orjson.dumps(big), META)) == 1000


def test_a_normalizer_bug_becomes_a_dead_letter_not_a_crash(monkeypatch) -> None:
    from streams import encode

    def broken(body: bytes, meta: RawMeta) -> list:
        raise RuntimeError("boom")

    monkeypatch.setattr(encode, "normalize", broken)
    [(out, value)] = encode.typed(b'{"entry": []}', META)
    assert (out.kind, out.record["reason"], out.record["payload"]) == (
        "dlq",
        "internal_error",
        b'{"entry": []}',
    )
    assert codec().decode(value)[0] == "DeadLetter"


def test_streams_reverify_turns_unsigned_records_into_dead_letters() -> None:
    from infra.core.settings import AppSecret
    from ingest.verify import sign
    from streams import encode

    secrets = (AppSecret("shop", b"s3cret"),)
    body = b'{"object": "whatsapp_business_account", "entry": []}'
    forged = RawMeta("raw", 0, 1, 0, "r", sign(body, b"wrong"))
    [(out, _)] = encode.typed(body, forged, secrets)
    assert (out.kind, out.record["reason"]) == ("dlq", "signature")
    signed = RawMeta("raw", 0, 1, 0, "r", sign(body, b"s3cret"))
    assert encode.typed(body, signed, secrets) == []
    assert encode.typed(body, forged) == []  # off by default


def test_raw_meta_survives_a_malformed_receive_time_header() -> None:
    # replay and reconcile used to crash on what the worker tolerated; both now share RawMeta.of
    headers = {"waflow-received-ms": b"not-a-number", "waflow-request-id": b"r1"}
    meta = RawMeta.of("raw", 2, 7, 1_700_000_000_000, headers)
    assert (meta.received_ms, meta.request_id, meta.signature) == (1_700_000_000_000, "r1", "")
    assert RawMeta.of("raw", 2, 7, 5, {"waflow-received-ms": b"42"}).received_ms == 42
