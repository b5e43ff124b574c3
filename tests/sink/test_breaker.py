import random

from sink.breaker import Breaker


def test_pauses_double_up_to_the_ceiling_and_reset_on_success() -> None:
    b = Breaker(first_s=0.5, max_s=4, jitter=0)
    assert not b.open
    assert [b.failed() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert b.open
    b.succeeded()
    assert not b.open
    assert b.failed() == 0.5


def test_jitter_stays_within_bounds() -> None:
    b = Breaker(first_s=1, max_s=1, jitter=0.2, rng=random.Random(3))
    assert all(0.8 <= b.failed() <= 1.2 for _ in range(100))
