"""Sink errors: a record that does not fit its table, or a write ClickHouse did not take."""


class SinkError(Exception):
    """Base class for sink errors."""


class RowError(SinkError):
    """One record cannot become a row (schema drift, value out of range): a dead letter."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class WriteError(SinkError):
    """ClickHouse did not take a batch. Transient (down, TOO_MANY_PARTS, out of memory, a
    migration pending): retry, never skip. `permanent` when the data itself was refused (a
    value the column cannot hold): retrying cannot help, so the batch is split down to the
    rows at fault, which become dead letters."""

    def __init__(self, detail: str, permanent: bool = False) -> None:
        super().__init__(detail)
        self.permanent = permanent


class EngineRefused(SinkError):
    """The engine did not load a batch of Avro rows (a row failed a check, a body did not
    decode, or the engine failed): the sink decodes that batch in Python instead."""


class QueryRefused(SinkError):
    """A `/query` statement reaches outside the database (files, URLs, other servers)."""
