"""The sink loop: consume typed topics, insert by size or time, commit only after the insert."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from infra.core import confluent, kafka
from infra.core.settings import Settings
from sink.breaker import Breaker
from sink.errors import WriteError
from sink.load import RowWriter
from sink.metrics import SinkMetrics
from sink.sends import cut_sends
from sink.writer import Batch, Consumed

log = logging.getLogger("waflow.sink")


class SinkLoop:
    def __init__(
        self,
        settings: Settings,
        rows: RowWriter,
        metrics: SinkMetrics,
        breaker: Breaker | None = None,
        max_poll_interval_s: float = 300,  # Kafka's default; tests shorten it
    ) -> None:
        t = settings.topics
        self.topics = t.sink_reads
        self.settings = settings
        self.rows = rows
        self.metrics = metrics
        self.consumer = AIOKafkaConsumer(
            *self.topics,
            **kafka.client(settings),
            group_id=t.sink_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.sink_batch_rows,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            isolation_level="read_committed",
            max_poll_interval_ms=int(max_poll_interval_s * 1000),
        )
        self.breaker = breaker or Breaker()
        self.framing = confluent.wire(settings)  # reads Confluent-framed records when set
        self.stopping = asyncio.Event()
        # When the batch now being written was handed over; None while nothing waits.
        self.waiting_since: float | None = None

    async def run(self) -> None:
        """Collect the next batch while the last one is cut, written and committed: the
        insert runs in the engine's thread, so fetching from Kafka no longer waits for it.
        One write at a time, in order, so commits stay in offset order."""
        await self.consumer.start()
        writing: asyncio.Task[None] | None = None
        try:
            while not self.stopping.is_set():
                records = await self._collect()
                if writing is not None:
                    await writing
                    writing = None
                if records and not self.stopping.is_set():
                    writing = asyncio.create_task(self._flush(records))
            if writing is not None:
                await writing
        finally:
            if writing is not None and not writing.done():
                writing.cancel()  # an error left the loop; nothing after it is committed
            await self.consumer.stop()

    async def _collect(self) -> list[Consumed]:
        """Fill a batch until it has `sink_batch_rows` or `sink_batch_seconds` have passed."""
        out: list[Consumed] = []
        deadline = time.monotonic() + self.settings.sink_batch_seconds
        while len(out) < self.settings.sink_batch_rows and not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            fetched = await self.consumer.getmany(
                timeout_ms=int(left * 1000), max_records=self.settings.sink_batch_rows - len(out)
            )
            for tp, msgs in fetched.items():
                out.extend(Consumed(tp.topic, tp.partition, m.offset, m.value or b"") for m in msgs)
        if self.framing is not None and any(r.value[:1] == confluent.MAGIC for r in out):
            out = await asyncio.to_thread(self._unframe, out)  # a registry look-up may block
        return out

    def _unframe(self, records: list[Consumed]) -> list[Consumed]:
        """Confluent-framed records in the codec's form (infra/core/confluent.py)."""
        assert self.framing is not None
        convert = self.framing.to_single_object
        return [Consumed(r.topic, r.partition, r.offset, convert(r.value)) for r in records]

    def stalled(self) -> str:
        """Why the sink is unhealthy, or "": a batch has waited for its commit longer than
        WAFLOW_SINK_STALL_SECONDS (ClickHouse refusing it, or the sink wedged)."""
        since = self.waiting_since
        limit = self.settings.sink_stall_s
        if since is not None and time.monotonic() - since > limit:
            return f"no commit for over {limit:g} s while a batch waits to be written"
        return ""

    async def _flush(self, records: list[Consumed]) -> None:
        self.waiting_since = time.monotonic()
        now = datetime.now(UTC)
        typed: list[Consumed] = []
        business: list[Consumed] = []  # the business's JSON flow sends (sink/sends.py)
        for rec in records:
            (business if rec.topic == self.settings.topics.sends else typed).append(rec)
        batches = self.rows.cut(typed, now)
        self._count_dead(batches.dead_reasons)
        if business:
            extra = cut_sends(business, now)
            batches.batches.extend(extra.batches)
            self._count_dead(extra.dead_reasons)
        for batch in batches.batches:
            if not await self._write(batch, now):
                return  # stopped while retrying: nothing committed, the next start re-reads
        commits: dict[TopicPartition, int] = {}
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            commits[tp] = max(commits.get(tp, 0), rec.offset + 1)
        try:
            await self.consumer.commit(commits)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on while the breaker waited out an outage (no poll within
            # max.poll.interval.ms): these partitions may be another sink's now. The rows are
            # in; whoever reads the partitions next re-reads them from the last commit, and
            # the existing-id check drops the copies. Rejoining happens on the next poll.
            self.metrics.evicted.inc()
            log.warning("commit refused after a rebalance; re-reading", extra={"why": str(exc)})
        self.waiting_since = None
        await self._record_lag()

    def _count_dead(self, reasons: dict[str, int]) -> None:
        for reason, count in reasons.items():
            self.metrics.dead_letters.labels(reason).inc(count)

    async def _write(self, batch: Batch, now: datetime) -> bool:
        """Never skip a batch: the partition waits while the breaker paces retries. False when
        told to stop before the batch was written."""
        while True:
            started = time.perf_counter()
            try:
                loaded = await self.rows.write(batch, now)
                break
            except WriteError as exc:
                pause = self.breaker.failed()
                self.metrics.write_failures.inc()
                self.metrics.circuit_open.set(1)
                log.warning(
                    "insert failed, retrying",
                    extra={
                        "table": batch.table,
                        "rows": batch.size,
                        "error": str(exc)[:300],
                        "retry_in_s": round(pause, 2),
                    },
                )
                if await self._stopped_within(pause):
                    return False
        self.breaker.succeeded()
        self.metrics.circuit_open.set(0)
        self.metrics.insert_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_rows.observe(batch.size)
        self.metrics.engine_refused.inc(loaded.refused)
        self.metrics.lost.inc(loaded.lost)
        self._count_dead(loaded.dead)
        for table, size in loaded.sizes.items():
            self.metrics.rows.labels(table).inc(loaded.inserted[table])
            self.metrics.skipped.labels(table).inc(size - loaded.inserted[table])
        log.info(
            "batch written",
            extra={
                "table": batch.table,
                "rows": batch.size,
                "inserted": sum(loaded.inserted.values()),
                "token": batch.token,
            },
        )
        return True

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _record_lag(self) -> None:
        """Records between our position and the last stable offset, per topic."""
        lag: dict[str, int] = dict.fromkeys(self.topics, 0)
        for tp in self.consumer.assignment():
            end = self.consumer.last_stable_offset(tp)
            if end is not None:
                lag[tp.topic] += max(0, end - await self.consumer.position(tp))
        for topic, behind in lag.items():
            self.metrics.lag.labels(topic).set(behind)
