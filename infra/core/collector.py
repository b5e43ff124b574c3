"""Python's cyclic garbage collector, set for long-running stages once they have started.

The ingress answered at 9,000 requests/s with a p99 of 20 ms where the same server without
Kafka took 2 ms: the gap was the collector. Every 700 net allocations (a few requests) it ran a
young collection, and the full collections it triggered walked every object the imports and
clients had built. Freezing those after start-up moves them out of the collector's sight, and
a larger young generation runs it a thirtieth as often; only cyclic garbage waits longer, since
reference counting frees the rest at once. Measured: p99 20 -> 8 ms, 11.8k -> 13.3k requests/s.
"""

from __future__ import annotations

import gc

YOUNG = 20_000  # allocations between young collections (Python's default: 700)
MIDDLE = 50  # young collections between middle ones (10)
OLD = 100  # middle collections between full ones (10); 3.11 also waits for 25 % growth


def settle() -> None:
    """Collect once, freeze what start-up built, and collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)
