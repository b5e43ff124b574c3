"""Write batches to ClickHouse idempotently: skip ids the table has, insert the rest once.

The embedded engine is single-process and sync-only, so every call goes through one worker
thread: the event loop never blocks, and calls never overlap.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from clickhouse_connect.driver.client import Client

from infra.core.clickhouse import insert_settings
from sink import avro
from sink.errors import EngineRefused, QueryRefused, WriteError
from sink.query import external_sources, file_clause, output_format

T = TypeVar("T")


@dataclass(frozen=True)
class Consumed:
    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True)
class AvroRows:
    """Records still in Avro, all written with the current schema `name`, as one container the
    engine decodes; `records` stay so the Python path can take them if the engine refuses."""

    name: str
    container: bytes = field(repr=False)
    records: Sequence[Consumed] = field(repr=False)


@dataclass(frozen=True)
class Batch:
    """Rows for one table cut on offset ranges; `token` names those ranges."""

    table: str
    id_column: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[str, list[Any]]] = field(repr=False)
    token: str
    time_column: str | None = None
    time_range: tuple[datetime, datetime] | None = None
    avro: AvroRows | None = None
    # Where each row came from (aligned with `rows`), so a row ClickHouse refuses for good
    # becomes a dead letter that names its record.
    origins: Sequence[Consumed] = field(default=(), repr=False)

    @property
    def size(self) -> int:
        return len(self.avro.records) if self.avro else len(self.rows)

    def halves(self) -> tuple[Batch, Batch]:
        """The rows split in two, each half with a token of its own (the halves are other
        inserts than the whole, for ClickHouse's insert deduplication)."""
        mid = len(self.rows) // 2
        first, second = (
            replace(
                self,
                rows=self.rows[a:b],
                origins=self.origins[a:b],
                token=f"{self.token}/{a}-{b}",
            )
            for a, b in ((0, mid), (mid, len(self.rows)))
        )
        return first, second


class BatchWriter(Protocol):
    async def write(self, batch: Batch) -> int:
        """Make the batch's rows present exactly once; return how many were new. A batch of
        Avro rows may be refused (EngineRefused): the caller then decodes it in Python."""


class Engine:
    """One ClickHouse client used from one thread, and a read-only one for `/query`."""

    def __init__(
        self,
        client: Client,
        database: str,
        cluster: str = "",
        embedded: bool = False,
        reader: Client | None = None,
    ) -> None:
        self.client = client
        # readonly=1 on a handle of its own: the setting cannot be lifted on it, and the
        # writer's handle never sees it (infra.core.clickhouse.connect_readonly).
        self.reader = reader
        self.database = database
        self.cluster = cluster
        # The embedded engine shares our file system and is owned by this process alone: it
        # can read a batch's Avro from a file, and a table's count() moves only by our inserts.
        self.embedded = embedded
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def select(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        """Run waflow's own SQL (trusted, never a user's) on the writer's client."""

        def run() -> tuple[list[str], list[list[Any]]]:
            result = self.client.query(sql)
            return list(result.column_names), [list(r) for r in result.result_rows]

        return await self.call(run)

    async def query(
        self, sql: str, write: bool = False, fmt: str = ""
    ) -> tuple[list[str], list[list[Any]]] | bytes:
        """Run SQL for `waflow query`: read-only unless `write`, and never a function, engine or
        clause that reaches files, URLs or other servers (QueryRefused). Columns and rows; or,
        when the SQL names a FORMAT or `fmt` is given, the engine's own output in that format,
        as clickhouse-client prints it."""
        if self.reader is None:
            raise QueryRefused("this engine has no read-only client for queries")
        reader = self.reader

        def run() -> tuple[list[str], list[list[Any]]] | bytes:
            ast = reader.query(f"EXPLAIN AST {sql}").result_rows
            reaching = external_sources(str(row[0]) for row in ast)
            if reaching:
                named = ", ".join(sorted(reaching))
                raise QueryRefused(f"refused: {named} reach files, URLs or other servers")
            canonical = reader.query("SELECT formatQuery({q:String})", parameters={"q": sql})
            text = str(canonical.result_rows[0][0])
            if file_clause(text):
                raise QueryRefused("refused: INTO OUTFILE / FROM INFILE reach the file system")
            client = self.client if write else reader
            if fmt or output_format(text):
                return bytes(client.raw_query(sql, fmt=fmt or None))
            result = client.query(sql)
            return list(result.column_names), [list(r) for r in result.result_rows]

        return await self.call(run)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        if self.reader is not None:
            self.reader.close()
        self.client.close()


# ClickHouse error codes that mean "this data, never": parse and conversion failures, values
# out of a type's range, our own row checks (throwIf). Anything else (network, TOO_MANY_PARTS,
# memory, timeouts, a table or column a pending migration adds) is worth a retry.
PERMANENT_CODES = frozenset({6, 26, 27, 38, 41, 43, 53, 69, 70, 72, 117, 131, 321, 395})
_CODE = re.compile(r"Code: (\d+)")


def refused_for_good(exc: BaseException) -> bool:
    """Whether ClickHouse (or the driver, converting a value for its column) refused the data
    itself, so that writing it again can never succeed."""
    from clickhouse_connect.driver.exceptions import DataError

    if isinstance(exc, DataError | TypeError | ValueError | OverflowError | AttributeError):
        return True  # the driver could not turn a value into its column's type
    found = _CODE.search(str(exc))
    return found is not None and int(found.group(1)) in PERMANENT_CODES


class ClickHouseWriter:
    """Writes each id once. Ids already present are looked up within the batch's range of the
    table's time column, widened by `copies_within` each way: a copy of an item (a redelivery,
    re-batched or not) may carry another receive time than the row it copies, and the platform
    redelivers for up to 7 days (WAFLOW_DEDUP_WINDOW_DAYS)."""

    def __init__(self, engine: Engine, copies_within: timedelta = timedelta(days=7)) -> None:
        self.engine = engine
        self.copies_within = copies_within

    async def write(self, batch: Batch) -> int:
        if batch.avro is not None:
            return await self.engine.call(lambda: self._load(batch))
        try:
            return await self.engine.call(lambda: self._write(batch))
        except Exception as exc:  # the driver and chDB raise many kinds
            message = f"insert into {batch.table} failed: {exc}"
            raise WriteError(message, refused_for_good(exc)) from exc

    def _load(self, batch: Batch) -> int:
        """One statement decodes, checks, dedups and inserts; any failure hands the batch to
        the Python path, which knows which record was at fault (or retries a sick engine)."""
        assert batch.avro is not None
        if not self.engine.embedded:  # a server cannot read our files: Python decodes instead
            raise EngineRefused(f"{batch.table}: only the embedded engine loads Avro files")
        db, client = self.engine.database, self.engine.client
        count = f"SELECT count() FROM {db}.{batch.table}"
        with tempfile.NamedTemporaryFile(suffix=".avro") as file:
            file.write(batch.avro.container)
            file.flush()
            try:
                before = client.command(count)
                days = self.copies_within.days
                client.command(avro.insert(db, batch.avro.name, file.name, batch.token, days))
                after = client.command(count)
            except Exception as exc:  # bad row, undecodable body, or the engine itself
                raise EngineRefused(f"{batch.table}: {exc}") from exc
        return int(str(after)) - int(str(before))

    def _write(self, batch: Batch) -> int:
        db = self.engine.database
        client = self.engine.client
        ids = [key for key, _ in batch.rows]
        # A crashed worker may have written a record twice at different offsets, and a
        # restarted sink re-reads what it inserted but did not commit: ask which ids exist.
        sql = (
            f"SELECT {batch.id_column} FROM {db}.{batch.table} "
            f"WHERE {batch.id_column} IN {{ids:Array(String)}}"
        )
        params: dict[str, Any] = {"ids": ids}
        if batch.time_column and batch.time_range:
            between = "BETWEEN {lo:DateTime64(3, 'UTC')} AND {hi:DateTime64(3, 'UTC')}"
            sql += f" AND {batch.time_column} {between}"
            lo, hi = batch.time_range
            params["lo"], params["hi"] = lo - self.copies_within, hi + self.copies_within
        have = {row[0] for row in client.query(sql, parameters=params).result_rows}
        fresh = [row for key, row in batch.rows if key not in have]
        if fresh:
            # Column-oriented: the driver sends columns, so handing it columns saves it a
            # transpose of every row.
            client.insert(
                f"{db}.{batch.table}",
                [list(column) for column in zip(*fresh, strict=True)],
                column_names=list(batch.columns),
                column_oriented=True,
                settings={
                    "insert_deduplication_token": batch.token,
                    **insert_settings(self.engine.cluster),
                },
            )
        return len(fresh)
