from streams.dedup import claim
from streams.records import kind_of


def test_redelivery_within_the_window_is_dropped_after_it_expires_kept() -> None:
    store: dict[str, str] = {}
    assert claim(store, "a", offset=7, now_ms=1000, window_ms=500)
    assert not claim(store, "a", offset=9, now_ms=1400, window_ms=500)
    assert claim(store, "a", offset=12, now_ms=1600, window_ms=500)


def test_replay_of_the_claiming_offset_is_emitted_again() -> None:
    """Regression: a worker killed between its RocksDB write and the producer's flush lost the
    output, because the restarted worker found the id already claimed."""
    store: dict[str, str] = {}
    assert claim(store, "a", offset=7, now_ms=1000, window_ms=500)
    assert claim(store, "a", offset=7, now_ms=1100, window_ms=500)  # the crash replay
    assert not claim(store, "a", offset=8, now_ms=1100, window_ms=500)


def test_only_records_waflow_wrote_are_routed() -> None:
    assert kind_of({"waflow-kind": b"responses"}) == "responses"
    assert kind_of({}) is None
    assert kind_of({"waflow-kind": b"\xff"}) is None
