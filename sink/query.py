"""The contract of the sink's `/query` endpoint, owned here and imported by both sides.

The embedded engine admits one process, so `waflow query` asks the sink to run SQL for it. The
endpoint listens on a port any local process (and any web page the developer opens) can reach,
so it trusts nothing but a credential only the owner can read:

- a random token made at each sink start, in a file readable by its owner only
  (`<data dir>/query.token`, as Jupyter does), sent as `Authorization: Bearer <token>`;
- a `Host` that is a loopback name (DNS rebinding gives a page a foreign host name);
- the content type `application/sql` (a page's no-cors request can send only text/plain,
  form or multipart bodies);
- read-only SQL unless the request asks for writes (`waflow-write: true`, `waflow query
  --write`), and never the engine's table functions or engines that read or write files,
  URLs or other servers (checked on the engine's own parse of the query).
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

import httpx

from infra.core.settings import Settings

CONTENT_TYPE = "application/sql"
WRITE_HEADER = "waflow-write"
FORMAT_HEADER = "waflow-format"  # an output format asked for beside the SQL (`--format`)
_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)


def output_format(canonical_sql: str) -> str | None:
    """The FORMAT a statement names, read from the engine's canonical form of it (formatQuery
    puts the clause last and leaves no comment after it), or None."""
    if canonical_sql.lstrip()[:6].upper() == "INSERT":  # `FORMAT Values`: the input's format
        return None
    found = _FORMAT.search(canonical_sql)
    return found.group(1) if found else None


TOKEN_FILE = "query.token"  # noqa: S105 (a file name, not a secret)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Table functions, table engines and dictionary sources that reach outside the database.
EXTERNAL = frozenset(
    name.lower()
    for name in (
        "file",
        "fileCluster",
        "url",
        "urlCluster",
        "s3",
        "s3Cluster",
        "gcs",
        "oss",
        "cosn",
        "hdfs",
        "hdfsCluster",
        "azureBlobStorage",
        "azureBlobStorageCluster",
        "remote",
        "remoteSecure",
        "cluster",
        "clusterAllReplicas",
        "mysql",
        "postgresql",
        "sqlite",
        "mongodb",
        "redis",
        "jdbc",
        "odbc",
        "executable",
        "executable_pool",
        "input",
        "iceberg",
        "icebergS3",
        "icebergAzure",
        "icebergHDFS",
        "icebergLocal",
        "deltaLake",
        "deltaLakeAzure",
        "hudi",
        "paimon",
        "arrowFlight",
        "ytsaurus",
        "http",
        "clickhouse",
        "python",
        "Distributed",
        "Kafka",
        "RabbitMQ",
        "NATS",
        "S3Queue",
        "AzureQueue",
        "EmbeddedRocksDB",
    )
)
_AST_CALL = re.compile(r"^\s*(?:Function|FunctionWithKeyValueArguments)\s+(\S+)")
_INTO_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b|\bFROM\s+INFILE\b", re.IGNORECASE)


def token_path(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE


def write_token(data_dir: Path) -> str:
    """A new token in a file only its owner can read (mode 0600, whatever umask says)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = token_path(data_dir)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, token.encode())
    finally:
        os.close(fd)
    return token


def read_token(data_dir: Path) -> str | None:
    try:
        return token_path(data_dir).read_text().strip()
    except FileNotFoundError:
        return None


def authorized(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


def loopback_host(header: str | None) -> bool:
    """True for `127.0.0.1`, `localhost`, `[::1]`, each with or without a port."""
    host = (header or "").strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return host in LOOPBACK_HOSTS


def external_sources(ast_lines: Iterable[str]) -> set[str]:
    """Names of functions, engines or dictionary sources in `EXPLAIN AST` output that reach
    files, URLs or other servers."""
    found = set()
    for line in ast_lines:
        call = _AST_CALL.match(line)
        if call and call.group(1).lower() in EXTERNAL:
            found.add(call.group(1))
    return found


def file_clause(sql: str) -> bool:
    """`INTO OUTFILE` / `FROM INFILE`: client-side file access, which the engine in-process has."""
    return bool(_INTO_OUTFILE.search(sql))


def post(
    settings: Settings, sql: str, write: bool = False, timeout: float = 120, fmt: str = ""
) -> httpx.Response:
    """Send SQL to the local sink with its token. httpx.ConnectError when no sink listens, or
    when none ever wrote a token in this data directory."""
    token = read_token(settings.data_dir)
    if token is None:
        raise httpx.ConnectError(f"no {token_path(settings.data_dir)}: no sink has run here")
    headers = {"authorization": f"Bearer {token}", "content-type": CONTENT_TYPE}
    if write:
        headers[WRITE_HEADER] = "true"
    if fmt:
        headers[FORMAT_HEADER] = fmt
    return httpx.post(
        f"http://127.0.0.1:{settings.admin_port_of('sink')}/query",
        content=sql.encode(),
        headers=headers,
        timeout=timeout,
    )
