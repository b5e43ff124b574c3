"""A circuit breaker for ClickHouse writes. Pure: it only says how long to wait.

The sink has one write in flight at a time, so a down or overloaded server (TOO_MANY_PARTS)
sees one probe per pause, with pauses doubling up to a ceiling, instead of a retry storm.
Jitter keeps several sink replicas from probing in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Breaker:
    first_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.2
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @property
    def open(self) -> bool:
        """True while the last write failed: the next one is a probe."""
        return self.failures > 0

    def failed(self) -> float:
        """Record a failure; return the pause before the next probe."""
        self.failures += 1
        pause: float = min(self.first_s * 2 ** min(self.failures - 1, 30), self.max_s)
        return pause * (1 + self.rng.uniform(-self.jitter, self.jitter))

    def succeeded(self) -> None:
        self.failures = 0
