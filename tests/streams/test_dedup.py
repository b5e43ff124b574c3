import orjson

from streams.dedup import batch_record, claim_all, claim_value, entries, key_of, wins
from streams.records import kind_of


def test_redelivery_within_the_window_is_dropped_after_it_expires_kept() -> None:
    held = claim_value(offset=7, now_ms=1000)
    assert wins(None, offset=7, now_ms=1000, window_ms=500)
    assert not wins(held, offset=9, now_ms=1400, window_ms=500)
    assert wins(held, offset=12, now_ms=1600, window_ms=500)


def test_replay_of_the_claiming_offset_is_emitted_again() -> None:
    """Regression: a worker killed between its RocksDB write and the producer's flush lost the
    output, because the restarted worker found the id already claimed."""
    held = claim_value(offset=7, now_ms=1000)
    assert wins(held, offset=7, now_ms=1100, window_ms=500)  # the crash replay
    assert not wins(held, offset=8, now_ms=1100, window_ms=500)


def test_an_id_twice_in_one_record_is_emitted_once() -> None:
    emit = claim_all(["a", "b", "a"], [None, None, None], offset=3, now_ms=0, window_ms=10)
    assert emit == [True, True, False]


def test_an_unreadable_claim_is_no_claim() -> None:
    assert wins(b"\xff", offset=1, now_ms=0, window_ms=10)
    assert wins(b'"x:y"', offset=1, now_ms=0, window_ms=10)


def test_a_batch_changelog_record_expands_to_the_keys_faust_wrote_one_by_one() -> None:
    key, value = batch_record(partition=2, offset=40, now_ms=1000, ids=["a", "wamid.é"])
    assert list(entries(key, value)) == [
        (key_of("a"), claim_value(40, 1000)),
        (key_of("wamid.é"), claim_value(40, 1000)),
    ]
    assert key_of("a") == orjson.dumps("a")  # what Faust's json key serializer produced
    assert list(entries(b'"old"', b'"1:2"')) == [(b'"old"', b'"1:2"')]  # per-key format
    assert list(entries(b'"old"', None)) == [(b'"old"', None)]  # a tombstone


def test_only_records_waflow_wrote_are_routed() -> None:
    assert kind_of({"waflow-kind": b"responses"}) == "responses"
    assert kind_of({}) is None
    assert kind_of({"waflow-kind": b"\xff"}) is None
