"""Records reach the agents in offset order per partition (streams/order.py)."""

from __future__ import annotations

from streams.order import Order


def test_records_are_delivered_in_order_once_and_a_hole_is_reported() -> None:
    order: Order[str] = Order()
    assert order.deliver("p0", 40)  # no seek yet: the first record sets the order
    order.sought("p0", 10)
    assert [order.deliver("p0", n) for n in (10, 11, 11, 9)] == [True, True, False, False]
    assert order.take_holes() == {}  # a record read twice is no hole
    assert order.deliver("p0", 14) is False  # 12 and 13 never came
    assert order.deliver("p0", 15) is False
    assert order.deliver("p1", 3) is True  # other partitions are unaffected
    assert order.take_holes() == {"p0": 12}
    assert order.take_holes() == {}
    order.sought("p0", 12)
    assert [order.deliver("p0", n) for n in (12, 13, 14)] == [True, True, True]


def test_a_seek_clears_a_hole_and_none_forgets_the_position() -> None:
    order: Order[str] = Order()
    order.sought("p0", 5)
    assert order.deliver("p0", 9) is False
    order.sought("p0", 9)  # a rebalance's seek lands first
    assert order.take_holes() == {}
    order.sought("p0", None)
    assert order.deliver("p0", 100) is True


def test_a_record_dropped_after_delivery_is_read_again_from_there() -> None:
    order: Order[str] = Order()
    order.sought("p0", 10)
    assert [order.deliver("p0", n) for n in (10, 11, 12)] == [True, True, True]
    assert order.dropped("p0", 13) is False  # never delivered
    assert order.dropped("p0", 11) is True
    assert order.deliver("p0", 13) is False  # the rest of the fetch in hand waits
    assert order.take_holes() == {"p0": 11}
    order.sought("p0", 11)
    assert [order.deliver("p0", n) for n in (11, 12, 13)] == [True, True, True]
    assert order.dropped("p1", 0) is False  # a partition it knows nothing of
