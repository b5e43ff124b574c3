"""Refusals logged in proportion to what an operator can read, not to what an attacker sends.

Every refusal is counted in the metrics. In the log, the first `FULL_LINES` refusals of each
interval are written in full; the rest are summed into one line per interval with a count per
outcome. A flood of any size therefore writes at most `FULL_LINES + 1` lines an interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping

FULL_LINES = 5


class RefusalLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self.window_end = clock() + interval_s
        self.logged = 0
        self.suppressed: Counter[str] = Counter()

    def refused(self, message: str, outcome: str, details: Mapping[str, object]) -> None:
        now = self.clock()
        if now >= self.window_end:
            self.flush(now)
        if self.logged < FULL_LINES:
            self.logged += 1
            self.logger.warning(message, extra={"outcome": outcome, **details})
        else:
            self.suppressed[outcome] += 1

    def flush(self, now: float | None = None) -> None:
        """Write the interval's summary line (if anything was held back) and start a new one."""
        if self.suppressed:
            self.logger.warning(
                "refusals not logged one by one",
                extra={
                    "interval_s": self.interval_s,
                    "counts": dict(self.suppressed),
                    "total": sum(self.suppressed.values()),
                },
            )
        self.suppressed = Counter()
        self.logged = 0
        self.window_end = (self.clock() if now is None else now) + self.interval_s

    async def run(self) -> None:
        """Flush at the end of every interval, so a summary is not held until the next refusal."""
        while True:
            await asyncio.sleep(max(0.0, self.window_end - self.clock()))
            if self.clock() >= self.window_end:
                self.flush()
