"""ClickHouse through clickhouse-connect only: a client from WAFLOW_CLICKHOUSE_URL, and migrations.

`http(s)://user:password@host:port/database` reaches a server; `chdb:///absolute/path` opens the
embedded engine (clickhouse-connect's chDB backend) which one process at a time may own.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError as DriverError

from infra.core.cluster import render
from infra.core.errors import ClickHouseError
from infra.core.settings import Settings
from schemas.catalog import RETENTION

MIGRATIONS = Path(__file__).parent.parent / "migrations"


@dataclass(frozen=True)
class Target:
    """Where the data lives, parsed from the URL once."""

    url: str
    database: str

    @property
    def embedded(self) -> bool:
        return self.url.startswith("chdb:")


def target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        return Target(url, "waflow")
    return Target(url, parts.path.strip("/") or "waflow")


@dataclass(frozen=True)
class Server:
    """How clickhouse-connect reaches a server, parsed from the URL and the password settings."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    secure: bool
    ca_cert: str | None

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages and logs."""
        return f"{'https' if self.secure else 'http'}://{self.username}@{self.host}:{self.port}"


def server(url: str, password: str = "", ca: Path | None = None) -> Server:
    """`http(s)://user[:password]@host[:port]/db`; the password may instead come from
    WAFLOW_CLICKHOUSE_PASSWORD(_FILE), and the server's CA from WAFLOW_CLICKHOUSE_CA."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    return Server(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8443 if secure else 8123),
        username=unquote(parts.username or "default"),
        password=password or unquote(parts.password or ""),
        secure=secure,
        ca_cert=str(ca) if ca is not None else None,
    )


def client_for(settings: Settings, readonly: bool = False) -> Client:
    """The configured ClickHouse, with its password and CA; read-only on request."""
    opened = connect_readonly if readonly else connect
    return opened(settings.clickhouse_url, settings.clickhouse_password, settings.clickhouse_ca)


def connect(url: str, password: str = "", ca: Path | None = None) -> Client:
    """Open a client; for a server the database is created by `migrate`, so connect to default."""
    parts = urlsplit(url)
    try:
        if parts.scheme == "chdb":
            if importlib.util.find_spec("chdb") is None:
                raise ClickHouseError(
                    "the embedded engine (chdb://) is not installed: pip install "
                    "'waflow[embedded]', or set WAFLOW_CLICKHOUSE_URL to a ClickHouse server"
                )
            Path(parts.path).mkdir(parents=True, exist_ok=True)
            return clickhouse_connect.get_client(dsn=url)
        where = server(url, password, ca)
        return clickhouse_connect.get_client(
            host=where.host,
            port=where.port,
            username=where.username,
            password=where.password,
            secure=where.secure,
            ca_cert=where.ca_cert,
        )
    except ClickHouseError:
        raise
    except Exception as exc:  # the driver raises many kinds; ours says where and why
        safe = server(url).safe_url
        message = str(exc)
        for secret in {password, unquote(parts.password or "")} - {""}:
            message = message.replace(secret, "***")
        raise ClickHouseError(f"cannot open ClickHouse at {safe}: {message}") from exc


def connect_readonly(url: str, password: str = "", ca: Path | None = None) -> Client:
    """A client of its own whose every query runs with `readonly=1`: no write, no DDL, no
    setting change, and the setting cannot be lifted from inside a query. On the embedded
    engine it is set once on this handle (a per-query readonly=1 could not be restored and
    would stick); on a server it rides with every request (not exercised against a server)."""
    client = connect(url, password, ca)
    try:
        if urlsplit(url).scheme == "chdb":
            client.command("SET readonly = 1")
        else:
            client.set_client_setting("readonly", "1")
    except DriverError as exc:
        raise ClickHouseError(f"cannot make a read-only ClickHouse client: {exc}") from exc
    return client


def insert_settings(cluster: str) -> dict[str, Any]:
    """On a cluster an insert returns once every shard has its rows, so a read right after sees
    them and a committed Kafka offset never runs ahead of ClickHouse."""
    return {"insert_distributed_sync": 1} if cluster else {}


def migrations() -> list[tuple[int, str, str]]:
    """(number, name, sql) for every numbered file under infra/migrations, in order."""
    found = []
    for path in sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        found.append((int(path.name[:4]), path.stem, path.read_text()))
    return found


def statements(sql: str, database: str) -> list[str]:
    body = re.sub(r"--[^\n]*", "", sql).replace("{db}", database)
    return [s.strip() for s in body.split(";") if s.strip()]


def ddl(database: str, cluster: str = "") -> list[str]:
    """Every statement the migrations run, in order, for one server or for `cluster`."""
    out = [f"CREATE DATABASE IF NOT EXISTS {database}", _ledger(database)]
    for _, _, sql in migrations():
        out.extend(statements(sql, database))
    return [rendered for statement in out for rendered in render(statement, cluster)]


def _ledger(database: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )


def ttl_statements(
    database: str, days: tuple[tuple[str, int], ...], current: dict[str, str], cluster: str = ""
) -> list[str]:
    """The ALTERs that bring each table's TTL to `days` (0: none), given each table's current
    `engine_full`; nothing for a table already there. On a cluster they go to the replicated
    `_local` tables (a Distributed table keeps no rows). Existing parts are not rewritten at
    once (materialize_ttl_after_modify = 0): merges apply the TTL as they happen."""
    out = []
    for table, keep in days:
        column, _ = RETENTION[table]
        now = current.get(table, "")
        target = (
            f"{database}.{table}_local ON CLUSTER {cluster}" if cluster else f"{database}.{table}"
        )
        if keep == 0 and " TTL " in now:
            out.append(f"ALTER TABLE {target} REMOVE TTL")
        elif keep > 0 and f"TTL {column} + toIntervalDay({keep})" not in now:
            out.append(
                f"ALTER TABLE {target} MODIFY TTL {column} + INTERVAL {keep} DAY "
                "SETTINGS materialize_ttl_after_modify = 0"
            )
    return out


def apply_ttl(
    client: Client, database: str, days: tuple[tuple[str, int], ...], cluster: str = ""
) -> list[str]:
    """Set every table's retention (WAFLOW_CLICKHOUSE_TTL_DAYS); return the statements run."""
    suffix = "_local" if cluster else ""
    try:
        rows = client.query(
            "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
        current = {str(n).removesuffix(suffix): str(e) for n, e in rows}
        statements = ttl_statements(database, days, current, cluster)
        for statement in statements:
            client.command(statement)
        return statements
    except DriverError as exc:
        raise ClickHouseError(f"setting the tables' TTL failed: {exc}") from exc


def migrate(client: Client, database: str, cluster: str = "", upto: int = 9999) -> list[str]:
    """Apply the migrations not yet recorded in `{db}.schema_migrations` (numbered at most
    `upto`: a database as an earlier release left it); return their names.

    With a cluster name every statement runs `ON CLUSTER` in its replicated form (infra/cluster).
    """
    try:
        for statement in (f"CREATE DATABASE IF NOT EXISTS {database}", _ledger(database)):
            for rendered in render(statement, cluster):
                client.command(rendered)
        done = {
            r[0]
            for r in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows
        }
        applied = []
        for version, name, sql in migrations():
            if version in done or version > upto:
                continue
            for statement in statements(sql, database):
                for rendered in render(statement, cluster):
                    client.command(rendered)
            client.insert(
                f"{database}.schema_migrations",
                [[version, name]],
                column_names=["version", "name"],
                settings=insert_settings(cluster),
            )
            applied.append(name)
        return applied
    except DriverError as exc:
        raise ClickHouseError(f"migration failed: {exc}") from exc
