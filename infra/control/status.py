"""`waflow status`: scrape every stage's /metrics, the broker's offsets and ClickHouse, then
draw infra/screen's view, refreshing until interrupted (or once, with --once)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence

import httpx
from rich.console import Console
from rich.live import Live

from infra.control.lag import lag
from infra.control.screen import STAGES, Samples, Snapshot, merge, parse, view
from infra.core.clickhouse import target
from infra.core.errors import InfraError
from infra.core.settings import Settings
from schemas.catalog import KINDS

Sql = Callable[[str], list[list[object]]]
TABLES = tuple(kind.table for kind in KINDS)


def endpoints(settings: Settings, given: Sequence[str] = ()) -> dict[str, list[str]]:
    """stage -> metrics URLs: the local ports by default; `stage=url` entries replace a stage's."""
    everywhere = settings.admin_host in ("0.0.0.0", "::")  # noqa: S104 (we connect)
    host = "127.0.0.1" if everywhere else settings.admin_host
    out = {stage: [f"http://{host}:{settings.admin_port_of(stage)}/metrics"] for stage in STAGES}
    replaced: dict[str, list[str]] = {}
    for entry in given:
        stage, _, url = entry.partition("=")
        if stage not in STAGES or not url:
            raise InfraError(f"--metrics {entry!r}: use stage=url with stage one of {STAGES}")
        replaced.setdefault(stage, []).append(url)
    return out | replaced


async def collect(settings: Settings, urls: dict[str, list[str]], sql: Sql) -> Snapshot:
    problems: list[str] = []
    stages: dict[str, Samples | None] = {}
    async with httpx.AsyncClient(timeout=3, verify=_trust(settings)) as client:
        for stage, stage_urls in urls.items():
            found = []
            for url in stage_urls:
                try:
                    answer = await client.get(url)
                    answer.raise_for_status()
                    found.append(parse(answer.text))
                except httpx.HTTPError as exc:
                    problems.append(f"{stage}: {url} did not answer ({type(exc).__name__})")
            stages[stage] = merge(found) if found else None
    try:
        behind: dict[tuple[str, str], int] | None = await asyncio.wait_for(lag(settings), 10)
    except Exception as exc:  # broker down or unreachable: the screen says so and goes on
        behind = None
        problems.append(f"broker {settings.kafka_bootstrap}: {type(exc).__name__}")
    rows, dead = await asyncio.to_thread(_clickhouse, settings, sql, problems)
    return Snapshot(time.time(), stages, behind, rows, dead, tuple(problems))


def _trust(settings: Settings) -> ssl.SSLContext | bool:
    """The ingress's own certificate pinned: a probe by IP matches no name, and the certificate
    may be self-signed; trusting exactly the configured file is stricter than either check."""
    if settings.tls_cert is None:
        return True
    context = ssl.create_default_context(cafile=str(settings.tls_cert))
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def _clickhouse(
    settings: Settings, sql: Sql, problems: list[str]
) -> tuple[dict[str, int] | None, list[tuple[str, str, int]] | None]:
    db = target(settings.clickhouse_url).database
    counts = " UNION ALL ".join(f"SELECT '{t}', count() FROM {db}.{t}" for t in TABLES)
    try:
        rows = {str(r[0]): int(str(r[1])) for r in sql(counts)}
        dead = [
            (str(r[0]), str(r[1]), int(str(r[2])))
            for r in sql(
                f"SELECT stage, reason, count() FROM {db}.dead_letters "
                "GROUP BY stage, reason ORDER BY count() DESC LIMIT 10"
            )
        ]
    except (InfraError, httpx.HTTPError) as exc:
        problems.append(f"ClickHouse: {exc}")
        return None, None
    return {t: rows.get(t, 0) for t in TABLES}, dead


def run(
    settings: Settings, sql: Sql, urls: dict[str, list[str]], once: bool, interval_s: float
) -> None:
    console = Console()
    prev = asyncio.run(collect(settings, urls, sql))
    time.sleep(interval_s)
    cur = asyncio.run(collect(settings, urls, sql))
    if once:
        console.print(view(prev, cur))
        return
    with Live(view(prev, cur), console=console, screen=False, auto_refresh=False) as live:
        while True:
            time.sleep(interval_s)
            prev, cur = cur, asyncio.run(collect(settings, urls, sql))
            live.update(view(prev, cur), refresh=True)
