from infra.control.loadgen import Generator
from infra.control.reconcile import _quote, expect, lookup
from infra.control.reconcile import compare as compare_
from streams.records import RawMeta

HOUR = 3_600_000


def test_redelivered_items_count_once_in_their_first_window_and_gaps_are_reported() -> None:
    gen = Generator(seed=3, wabas=2, run="rec")
    first = gen.delivery(1_700_000_000, max_items=1).body
    second = gen.delivery(1_700_000_000, max_items=1).body
    records = [
        (RawMeta("raw", 0, 0, 10 * HOUR, ""), first),
        (RawMeta("raw", 1, 0, 10 * HOUR + 5, ""), second),
        (RawMeta("raw", 0, 1, 12 * HOUR, ""), first),  # the platform's redelivery
    ]
    expected = expect(records, HOUR)
    assert expected.raw_records == 3
    assert len(expected.items) == 2
    assert {window for _, window, _ in expected.items.values()} == {10 * HOUR}
    some = next(iter(expected.items))
    lines = compare_(expected, {some})
    assert sum(ln.expected for ln in lines) == 2
    assert sum(ln.missing for ln in lines) == 1


def test_ids_are_quoted_as_clickhouse_string_literals() -> None:
    assert _quote("wamid.ABC") == "'wamid.ABC'"
    assert _quote("it's") == "'it\\'s'"
    assert _quote("back\\slash'") == "'back\\\\slash\\''"


def test_lookup_asks_each_table_for_every_id_quoted() -> None:
    gen = Generator(seed=4, wabas=1, run="q'uote")
    expected = expect([(RawMeta("raw", 0, 0, 0, ""), gen.delivery(1, max_items=1).body)], HOUR)
    asked: list[str] = []

    def run_sql(sql: str) -> list[list[object]]:
        asked.append(sql)
        return [[next(iter(expected.items))]]

    assert lookup(expected, run_sql, "waflow") == set(expected.items)
    assert asked and all(sql.startswith("SELECT DISTINCT") for sql in asked)
    for dedup_id in expected.items:
        assert any(_quote(dedup_id) in sql for sql in asked), dedup_id
