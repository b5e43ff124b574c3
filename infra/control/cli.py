"""The `waflow` command. The only place that reads the environment: it builds Settings once."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from infra.core import broker
from infra.core.collector import settle
from infra.core.errors import InfraError
from infra.core.logs import configure
from infra.core.malloc import bound_engine_dirty_pages, bound_fragmentation
from infra.core.settings import Settings

STAGES = ("ingest", "streams", "sink")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="waflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="broker + topics + ingress + streams + sink, until Ctrl-C")
    for stage in STAGES:
        sub.add_parser(stage, help=f"run the {stage} stage alone")
    b = sub.add_parser("broker", help="fetch, start, stop or check the local Kafka broker")
    b.add_argument("action", choices=("fetch", "start", "stop", "status"))
    b.add_argument("--nodes", type=int, default=1, help="3 for a local 3-broker cluster")
    b.add_argument("--base-port", type=int, default=9092)
    tp = sub.add_parser(
        "topics", help="create the declared topics and bring existing ones to their settings"
    )
    tp.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    m = sub.add_parser("migrate", help="apply ClickHouse migrations (idempotent)")
    m.add_argument(
        "--print", action="store_true", help="print the DDL for this configuration, run nothing"
    )
    q = sub.add_parser("query", help="run SQL against the configured ClickHouse (read-only)")
    q.add_argument("sql")
    q.add_argument(
        "--write", action="store_true", help="allow statements that change data or schema"
    )
    q.add_argument(
        "--format",
        default="",
        help="an output format, as in clickhouse-client (CSV, JSONEachRow...)",
    )
    q.add_argument(
        "--wait",
        type=float,
        default=30,
        help="seconds to wait for a starting sink to serve the query (default 30)",
    )
    r = sub.add_parser(
        "reconcile", help="raw topic vs ClickHouse rows + dead letters, per window and WABA"
    )
    r.add_argument("--minutes", type=float, default=60, help="how far back to look")
    r.add_argument("--window-minutes", type=float, default=10)
    r.add_argument(
        "--settle-seconds", type=float, default=30, help="skip the newest seconds (in flight)"
    )
    r.add_argument("--all", action="store_true", help="show every window, not only gaps")
    p = sub.add_parser(
        "replay", help="re-run normalization on raw deliveries of a time range (idempotent)"
    )
    p.add_argument("--since", help="UTC start, ISO 8601 (2026-11-27T10:00); default --minutes ago")
    p.add_argument("--until", help="UTC end, ISO 8601; default now")
    p.add_argument("--minutes", type=float, default=60, help="without --since: how far back")
    p.add_argument("--waba", default="", help="only items of this WABA id")
    p.add_argument("--flow", default="", help="only events of this flow id, responses of this name")
    st = sub.add_parser("status", help="live view of the running pipeline (Ctrl-C quits)")
    st.add_argument("--once", action="store_true", help="print one screen and exit")
    st.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    st.add_argument(
        "--metrics",
        action="append",
        default=[],
        metavar="STAGE=URL",
        help="a stage's /metrics URL (repeat for replicas); default: the local ports",
    )
    c = sub.add_parser(
        "check", help="preflight a deployment: Kafka login, ACLs, topics, ClickHouse, secrets"
    )
    c.add_argument("--kafka-only", action="store_true", help="skip the ClickHouse checks")
    a = sub.add_parser("acls", help="print the kafka-acls.sh lines that grant waflow its ACLs")
    a.add_argument(
        "--principal",
        default="",
        help="default: User:<WAFLOW_KAFKA_SASL_USERNAME>",
    )
    sc = sub.add_parser(
        "schemas", help="every writer schema on the schemas topic, with its fingerprint"
    )
    sc.add_argument("--topic", default="", help="only the schemas of this typed topic")
    sc.add_argument("--local", action="store_true", help="this release's schemas, without Kafka")
    sc.add_argument("--json", action="store_true", help="one JSON object per line, schema included")
    d = sub.add_parser("demo", help="post signed sample webhooks to the running stack")
    d.add_argument("--deliveries", type=int, default=20)
    d.add_argument("--sends", type=int, default=200, help="flow sends of the generated day")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        configure(settings.log_level)
        COMMANDS[args.command](settings, args)
    except InfraError as exc:
        sys.exit(f"waflow: {exc}")
    except KeyboardInterrupt:
        pass


def cmd_up(settings: Settings, args: argparse.Namespace) -> None:
    settings.require_ingress_secrets()
    started_broker = _ensure_local_broker(settings)
    from infra.core.topics import ensure_topics

    asyncio.run(ensure_topics(settings))
    refuse_on_kafka_problems(settings, STAGES)
    children = [
        subprocess.Popen([sys.executable, "-m", "infra.control.cli", stage]) for stage in STAGES
    ]
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(
        f"waflow is up: POST webhooks to http://{settings.http_host}:{settings.http_port}/webhook"
        f"  (Kafka {settings.kafka_bootstrap}, ClickHouse {_safe(settings.clickhouse_url)});"
        " Ctrl-C stops everything",
        flush=True,
    )
    try:
        # Like any supervisor (systemd, Kubernetes): a stage that exits is started again. The
        # stream worker exits on purpose when an agent fails, so that nothing is committed.
        while not stop:
            time.sleep(0.2)
            for i, (stage, child) in enumerate(zip(STAGES, children, strict=True)):
                if child.poll() is not None and not stop:
                    print(f"waflow: {stage} exited ({child.returncode}); restarting", flush=True)
                    time.sleep(1)
                    children[i] = subprocess.Popen(
                        [sys.executable, "-m", "infra.control.cli", stage]
                    )
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if started_broker:
            broker.stop(settings.data_dir)
        print("waflow stopped", flush=True)


def _ensure_local_broker(settings: Settings) -> bool:
    """Start the project's broker when the bootstrap is this machine's default and nobody runs."""
    if settings.kafka_bootstrap != "127.0.0.1:9092":
        return False
    node = broker.nodes_for(settings.data_dir)[0]
    if broker.is_running(node):
        return False
    print("starting Kafka (first run fetches the jars with Maven)...", flush=True)
    broker.start(settings.data_dir)
    return True


def refuse_on_kafka_problems(settings: Settings, stages: Sequence[str]) -> None:
    """Stop with one line per refusal (credentials, trust, ACLs, topics) before a stage starts.
    A broker that does not answer is no refusal: the stage starts and waits for it."""
    from infra.core import preflight

    lines: list[str] = []
    for stage in stages:
        problems = asyncio.run(preflight.check(settings, preflight.needs_of(stage, settings)))
        lines += [p.line for p in problems if p.permanent and p.line not in lines]
    if lines:
        raise InfraError("\nwaflow: ".join(lines))


def cmd_stage(settings: Settings, args: argparse.Namespace) -> None:
    if args.command == "ingest":
        settings.require_ingress_secrets()
    refuse_on_kafka_problems(settings, [args.command])
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    bound_fragmentation(os.environ)  # before any stage starts a thread (infra/malloc.py)
    bound_engine_dirty_pages(os.environ)  # before the sink loads chDB
    import uvloop

    if args.command == "ingest":
        from ingest.server import serve

        serve(settings)
    elif args.command == "streams":
        from faust import Worker

        from streams.agents import create_app

        if settings.streams_guarantee == "exactly_once":
            print(
                "warning: WAFLOW_STREAMS_GUARANTEE=exactly_once lost and duplicated items in "
                "waflow's hard-kill test (docs/guarantees.md); use it for trials only",
                file=sys.stderr,
            )
        # uvloop, as the ingress has: every loop Faust makes, its consumer thread's too.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        app = create_app(settings)
        # override_logging=False: mode would replace our JSON handler with its own and set the
        # root logger to DEBUG, building a record for every produced message (and unmasked).
        worker = Worker(
            app, loglevel=settings.log_level.lower(), quiet=True, override_logging=False
        )
        worker.spinner = None  # it writes terminal escapes into the JSON log stream
        settle()  # everything built so far lives as long as the process (infra/collector.py)
        worker.execute_from_commandline()
    else:
        from sink.server import run

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run(settings))


def cmd_broker(settings: Settings, args: argparse.Namespace) -> None:
    if args.action == "fetch":
        print(broker.fetch(settings.data_dir))
    elif args.action == "start":
        print(broker.start(settings.data_dir, args.nodes, args.base_port))
    elif args.action == "stop":
        broker.stop(settings.data_dir, args.nodes, args.base_port)
    else:
        nodes = broker.nodes_for(settings.data_dir, args.nodes, args.base_port)
        states = [
            f"node {n.node_id} 127.0.0.1:{n.port} "
            f"{'running' if broker.is_running(n) else 'stopped'}"
            for n in nodes
        ]
        print("\n".join(states))
        if not all(broker.is_running(n) for n in nodes):
            sys.exit(1)


def cmd_topics(settings: Settings, args: argparse.Namespace) -> None:
    from infra.core.topics import reconcile_topics

    changes = asyncio.run(reconcile_topics(settings, dry_run=args.dry_run))
    lines = [line for change in changes for line in change.lines()]
    verb = "would " if args.dry_run else ""
    for line in lines:
        print(f"{verb}{line}" if not line.startswith("warning") else line)
    if not lines:
        print("topics match their settings: nothing to do")


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    from infra.core.clickhouse import apply_ttl, client_for, ddl, migrate, target

    where = target(settings.clickhouse_url)
    cluster = settings.clickhouse_cluster
    if args.print:
        print(";\n\n".join(ddl(where.database, cluster)) + ";")
        return
    client = client_for(settings)
    applied = migrate(client, where.database, cluster)
    print("applied:", ", ".join(applied) or "nothing (up to date)")
    for statement in apply_ttl(client, where.database, settings.clickhouse_ttl_days, cluster):
        print("retention:", statement)


def cmd_query(settings: Settings, args: argparse.Namespace) -> None:
    answer = run_sql(settings, args.sql, write=args.write, fmt=args.format, wait_s=args.wait)
    if isinstance(answer, bytes):  # a FORMAT: the engine's output, as clickhouse-client prints it
        sys.stdout.buffer.write(answer)
        sys.stdout.flush()
    else:
        _print_table(*answer)


def run_sql(
    settings: Settings, sql: str, write: bool = False, fmt: str = "", wait_s: float = 30
) -> tuple[list[str], list[list[object]]] | bytes:
    """Route to the sink when it owns the embedded engine; otherwise open ClickHouse directly.
    Read-only unless `write`, either way. Columns and rows, or the engine's bytes when the SQL
    names a FORMAT or `fmt` is given. A sink that has run here but does not answer yet (the
    stack is starting) is waited for up to `wait_s` seconds, since it holds the engine."""
    from sink.query import post, read_token

    deadline = time.monotonic() + wait_s
    while True:
        try:
            answer = post(settings, sql, write=write, fmt=fmt)
            break
        except httpx.ConnectError:
            starting = read_token(settings.data_dir) is not None
            if not starting or time.monotonic() >= deadline:
                return _direct(settings, sql, write, fmt)
            time.sleep(0.5)
    if answer.status_code != 200:
        raise InfraError(answer.text)
    if answer.headers.get("content-type", "").startswith("application/json"):
        data = answer.json()
        return list(data["columns"]), list(data["rows"])
    return answer.content


def _direct(
    settings: Settings, sql: str, write: bool, fmt: str
) -> tuple[list[str], list[list[object]]] | bytes:
    """No sink serves queries: open ClickHouse ourselves."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from infra.core.clickhouse import client_for
    from sink.query import output_format

    try:
        client = client_for(settings, readonly=not write)
        canonical = client.query("SELECT formatQuery({q:String})", parameters={"q": sql})
        if fmt or output_format(str(canonical.result_rows[0][0])):
            return bytes(client.raw_query(sql, fmt=fmt or None))
        result = client.query(sql)
    except ClickHouseError as exc:
        raise InfraError(str(exc)) from exc
    return list(result.column_names), [list(r) for r in result.result_rows]


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> None:
    """Exit 1 when an item that reached the raw topic is neither a row nor a dead letter."""
    from infra.control import reconcile
    from infra.core.clickhouse import target

    until = reconcile.now_ms() - int(args.settle_seconds * 1000)
    since = until - int(args.minutes * 60_000)
    raw = asyncio.run(reconcile.read_raw(settings, since, until))
    expected = reconcile.expect(raw, int(args.window_minutes * 60_000))
    db = target(settings.clickhouse_url).database
    present = reconcile.lookup(expected, lambda sql: _rows(run_sql(settings, sql)), db)
    lines = reconcile.compare(expected, present)
    shown = [ln for ln in lines if ln.missing or args.all]
    _print_table(
        ["window (UTC)", "waba_id", "expected", "found", "missing"],
        [
            [time.strftime("%Y-%m-%d %H:%M", time.gmtime(ln.window_ms / 1000)), ln.waba_id,
             ln.expected, ln.found, ln.missing]
            for ln in shown
        ],
    )  # fmt: skip
    missing = sum(ln.missing for ln in lines)
    print(
        f"raw records {expected.raw_records}, items {len(expected.items)}, "
        f"found {len(expected.items) - missing}, missing {missing}"
    )
    if missing:
        sys.exit(1)


def cmd_replay(settings: Settings, args: argparse.Namespace) -> None:
    from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn

    from infra.control.replay import Report, Selection, replay

    until = _utc_ms(args.until) if args.until else int(time.time() * 1000)
    since = _utc_ms(args.since) if args.since else until - int(args.minutes * 60_000)
    if since >= until:
        raise InfraError("replay: --since must be before --until")
    columns = (*Progress.get_default_columns()[:2], MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("raw records", total=None)

        def show(report: Report) -> None:
            bar.update(task, total=report.total, completed=report.read)

        report = asyncio.run(
            replay(settings, since, until, Selection(args.waba, args.flow), progress=show)
        )
    sent = ", ".join(f"{kind} {n}" for kind, n in sorted(report.sent.items())) or "nothing"
    print(
        f"replay {report.run_id}: {report.raw_records} raw records in range, sent {sent}, "
        f"left out by --waba/--flow {report.skipped}. The sink skips ids already in ClickHouse."
    )


def cmd_status(settings: Settings, args: argparse.Namespace) -> None:
    from infra.control import status

    status.run(
        settings,
        lambda sql: _rows(run_sql(settings, sql)),
        status.endpoints(settings, args.metrics),
        once=args.once,
        interval_s=args.interval,
    )


def _utc_ms(text: str) -> int:
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InfraError(f"{text!r} is not an ISO 8601 time (2026-11-27T10:00)") from exc
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def _rows(answer: tuple[list[str], list[list[object]]] | bytes) -> list[list[object]]:
    if isinstance(answer, bytes):
        raise InfraError("waflow's own SQL names no FORMAT")
    return answer[1]


def _print_table(columns: list[str], rows: list[list[object]]) -> None:
    cells = [[str(c) for c in columns]] + [
        [json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else str(v) for v in r]
        for r in rows
    ]
    if not rows:
        print("(no rows)")
        return
    if len(columns) == 1 and len(rows) == 1:
        print(cells[1][0])
        return
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for n, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def cmd_check(settings: Settings, args: argparse.Namespace) -> None:
    """One line per problem and exit 1, or one line per part checked and exit 0."""
    from infra.core import preflight

    problems: list[str] = []
    try:
        settings.require_ingress_secrets()
    except InfraError as exc:
        problems.append(str(exc))
    for stage in STAGES:
        found = asyncio.run(preflight.check(settings, preflight.needs_of(stage, settings)))
        problems += [f"{stage}: {p.line}" for p in found if f"{stage}: {p.line}" not in problems]
    if not args.kafka_only:
        problems += _clickhouse_problems(settings)
    for line in problems:
        print(f"problem: {line}")
    if problems:
        sys.exit(1)
    print(f"ok: Kafka at {settings.kafka_bootstrap}: login, topics and ACLs of every stage")
    if not args.kafka_only:
        print("ok: ClickHouse reachable, migrations applied")


def _clickhouse_problems(settings: Settings) -> list[str]:
    from infra.core.clickhouse import migrations, target

    db = target(settings.clickhouse_url).database
    try:
        rows = _rows(run_sql(settings, f"SELECT version FROM {db}.schema_migrations"))
    except InfraError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [f"ClickHouse: {first} (run `waflow migrate` if the database is new)"]
    done = {int(str(row[0])) for row in rows}
    pending = [name for version, name, _ in migrations() if version not in done]
    return [f"ClickHouse: migrations pending: {', '.join(pending)} (run `waflow migrate`)"] * bool(
        pending
    )


def cmd_acls(settings: Settings, args: argparse.Namespace) -> None:
    from infra.core.kafka import acls

    security = settings.kafka_security
    principal = args.principal or f"User:{security.sasl_username or 'waflow'}"
    for acl in acls(settings):
        print(acl.command(principal))


def cmd_schemas(settings: Settings, args: argparse.Namespace) -> None:
    from infra.core import schemas_topic
    from schemas import catalog
    from schemas.codec import codec, publication

    if args.local:
        found = [json.loads(value) for _, value in publication(codec())]
    else:
        found = asyncio.run(schemas_topic.read(settings))
        if not found:
            raise InfraError(
                f"{settings.topics.schemas} is empty: the stream stage publishes the schemas "
                "when it starts (or use --local for this release's)"
            )
    if args.topic:
        names = {
            f"io.waflow.{k.schema}"
            for k in catalog.KINDS
            if settings.topics.typed(k.kind) == args.topic
        }
        if not names:
            typed = ", ".join(settings.topics.sink_inputs)
            raise InfraError(f"--topic {args.topic}: not a typed topic (one of {typed})")
        found = [f for f in found if f["name"] in names]
    for entry in found:
        if args.json:
            print(json.dumps(entry, ensure_ascii=False))
        else:
            print(f"{entry['fingerprint']}  {entry['name']} v{entry['version']}")


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
    from infra.control.loadgen import Generator, funnel
    from ingest.verify import sign

    settings.require_ingress_secrets()
    secret = settings.app_secrets[0].secret
    url = f"http://{settings.http_host}:{settings.http_port}/webhook"
    gen = Generator(seed=int(time.time()), wabas=5, run=f"demo{int(time.time())}")
    items = 0
    with httpx.Client(timeout=30) as client:

        def post(body: bytes) -> None:
            headers = {
                "content-type": "application/json",
                "x-hub-signature-256": sign(body, secret),
            }
            client.post(url, content=body, headers=headers).raise_for_status()

        for _ in range(args.deliveries):
            d = gen.delivery(int(time.time()), max_items=10)
            post(d.body)
            items += d.items
        for sample in sorted((Path(__file__).parent.parent / "samples").glob("*.json")):
            post(sample.read_bytes())
        # A day of flow sends (to the sends topic, as a business would write them) and what
        # followed: statuses and responses, for the funnel and the per-flow views.
        day = funnel(gen, ("flow.signup", "flow.survey", "flow.booking"), args.sends, _today())
        asyncio.run(_send_all(settings, settings.topics.sends, day.sends))
        for body in day.bodies:
            post(body)
    print(
        f"posted {args.deliveries} generated deliveries ({items} items), the documented samples "
        f"and a day of {args.sends} flow sends with their statuses and responses to {url}; "
        "try: waflow query 'SELECT * FROM waflow.flow_funnel'"
    )


def _today() -> int:
    return int(time.time()) // 86_400 * 86_400


async def _send_all(settings: Settings, topic: str, values: Sequence[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    from infra.core import kafka

    producer = AIOKafkaProducer(**kafka.producer(settings))
    await producer.start()
    try:
        sent = [await producer.send(topic, value) for value in values]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _safe(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}" if parts.password else url


COMMANDS = {
    "up": cmd_up,
    "ingest": cmd_stage,
    "streams": cmd_stage,
    "sink": cmd_stage,
    "broker": cmd_broker,
    "topics": cmd_topics,
    "reconcile": cmd_reconcile,
    "migrate": cmd_migrate,
    "query": cmd_query,
    "check": cmd_check,
    "acls": cmd_acls,
    "demo": cmd_demo,
    "replay": cmd_replay,
    "status": cmd_status,
    "schemas": cmd_schemas,
}

if __name__ == "__main__":
    main()
