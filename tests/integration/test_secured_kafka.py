"""The whole pipeline on a broker as managed clusters run it: a SASL_SSL listener (SCRAM-SHA-512,
certificates made here), Kafka's StandardAuthorizer, and only the ACLs `waflow acls` lists.

The broker is the project's own Kafka; its PLAINTEXT listener is the administrator's door (the
one super user), used here only to grant and revoke ACLs. Every waflow process connects over
SASL_SSL with its secrets read from files.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.core import broker, kafka
from infra.core.settings import Settings
from infra.core.topics import ensure_topics
from ingest.verify import sign
from sink import query as sink_query
from tests.conftest import ROOT, free_base_port
from tests.ingest.certs import Authority
from tests.integration.stages import Stage, free_port, stage_env

PASSWORD = "waflow-scram-password"
USERS = (("waflow", PASSWORD), ("limited", "limited-password"), ("revocable", "revocable-pw"))


def pick_free(taken: set[int]) -> int:
    """A free port none of the broker's other listeners will use (the set grows with it)."""
    while (port := free_port()) in taken:
        pass
    taken.add(port)
    return port


@dataclass(frozen=True)
class Cluster:
    admin: str  # PLAINTEXT: the administrator's door
    secured: str  # SASL_SSL, what waflow uses
    ca: Authority
    data: Path
    mtls: str  # SSL with a required client certificate

    def env(self, data: Path, user: str = "waflow", **extra: str) -> dict[str, str]:
        """A stack's settings over SASL_SSL, every secret from a file."""
        secrets = data / "secrets"
        secrets.mkdir(parents=True, exist_ok=True)
        password = dict(USERS)[user]
        (secrets / "kafka-password").write_text(password + "\n")
        base = stage_env(self.secured, data)
        (secrets / "app-secrets").write_text(base.pop("WAFLOW_APP_SECRETS"))
        (secrets / "verify-token").write_text(base.pop("WAFLOW_VERIFY_TOKEN"))
        return {
            **base,
            # Set empty: `make test` exports development values, and a secret given both ways
            # is refused at start-up.
            "WAFLOW_APP_SECRETS": "",
            "WAFLOW_VERIFY_TOKEN": "",
            "WAFLOW_APP_SECRETS_FILE": str(secrets / "app-secrets"),
            "WAFLOW_VERIFY_TOKEN_FILE": str(secrets / "verify-token"),
            "WAFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "WAFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "WAFLOW_KAFKA_SASL_USERNAME": user,
            "WAFLOW_KAFKA_SASL_PASSWORD_FILE": str(secrets / "kafka-password"),
            "WAFLOW_KAFKA_SSL_CA": str(self.ca.pem),
            **extra,
        }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data = tmp_path_factory.mktemp("secured-kafka")
    ca = Authority("kafka-test-ca", data)
    issued = ca.issue("localhost", client=False, stem="broker")
    keystore = data / "broker-keystore.pem"
    keystore.write_bytes(issued.key.read_bytes() + issued.cert.read_bytes())
    base = free_base_port()
    taken = {base, base + 1000}  # the PLAINTEXT and controller listeners
    secured, mtls = (pick_free(taken) for _ in range(2))
    spec = broker.Secured(secured, keystore, USERS, client_ca=ca.pem, mtls_port=mtls)
    try:
        admin = broker.start(data, base_port=base, jars_dir=ROOT / ".waflow", secured=spec)
        yield Cluster(admin, f"127.0.0.1:{secured}", ca, data, f"127.0.0.1:{mtls}")
    finally:
        broker.stop(data, base_port=base)


def grant(cluster: Cluster, user: str, acls: list[kafka.Acl], remove: bool = False) -> None:
    broker.grant(ROOT / ".waflow", cluster.admin, f"User:{user}", acls, remove)


def waflow(
    env: dict[str, str], *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "infra.control.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_pipeline_end_to_end_over_sasl_ssl_with_only_its_acls(
    cluster: Cluster, tmp_path: Path, payloads: dict[str, bytes]
) -> None:
    env = cluster.env(tmp_path, WAFLOW_HTTP_PORT=str(free_port()))
    grant(cluster, "waflow", kafka.acls(Settings.from_env(env)))
    # `waflow topics` as waflow's principal, over SASL_SSL: its ACLs allow creating its topics.
    created = waflow(env, "topics")
    assert created.returncode == 0, created.stderr
    checked = waflow(env, "check", "--kafka-only")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    stages = [Stage(n, env, tmp_path / f"{n}.log").start() for n in ("ingest", "streams", "sink")]
    settings = Settings.from_env(env)
    try:
        body = payloads["flow_response.json"]
        url = f"http://127.0.0.1:{settings.http_port}/webhook"
        headers = {"x-hub-signature-256": sign(body, b"shop-secret")}
        answer = None
        for _ in range(120):  # the ingress connects in the background: 503 until then
            try:
                answer = httpx.post(url, content=body, headers=headers, timeout=10)
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert answer is not None and answer.status_code == 200
        rows: object = None
        for _ in range(120):
            try:
                r = sink_query.post(settings, "SELECT count() FROM waflow.flow_responses")
                rows = r.json()["rows"] if r.status_code == 200 else r.text
                if rows == [[1]]:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        assert rows == [[1]], "\n".join(s.tail() for s in stages)
    finally:
        for stage in stages:
            stage.stop()
    for stage in stages:
        assert "Traceback" not in stage.tail(), stage.tail()
        # No secret in any line any stage wrote.
        for secret in (PASSWORD, "shop-secret", "support-secret"):
            assert secret not in stage.tail()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong password", "refused the login of WAFLOW_KAFKA_SASL_USERNAME=waflow"),
        ("untrusted broker", "set WAFLOW_KAFKA_SSL_CA"),
        ("missing ACL", "missing ACL: allow User:limited"),
    ],
)
def test_refusals_stop_the_stage_at_start_with_one_line(
    cluster: Cluster, tmp_path: Path, case: str, expected: str
) -> None:
    env = cluster.env(tmp_path, user="limited" if case == "missing ACL" else "waflow")
    if case == "wrong password":
        Path(env["WAFLOW_KAFKA_SASL_PASSWORD_FILE"]).write_text("not-the-password")
    if case == "untrusted broker":
        env["WAFLOW_KAFKA_SSL_CA"] = str(Authority("someone-else", tmp_path).pem)
    if case == "missing ACL":  # limited may read its raw topic, nothing else
        raw = Settings.from_env(env).topics.raw
        grant(cluster, "limited", [kafka.Acl("topic", raw, False, ("Read", "Describe"))])
    started = time.monotonic()
    done = waflow(env, "streams")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines and all(line.startswith("waflow: ") for line in lines), done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert "not-the-password" not in done.stderr + done.stdout
    assert time.monotonic() - started < 60  # it stops, it does not retry


def test_a_running_ingress_answers_503_never_200_once_it_cannot_write(
    cluster: Cluster, tmp_path: Path
) -> None:
    env = cluster.env(tmp_path, user="revocable", WAFLOW_HTTP_PORT=str(free_port()))
    settings = Settings.from_env(env)
    write = [kafka.Acl("topic", f"{settings.topics.prefix}.", True, ("Write",))]
    grant(cluster, "revocable", kafka.acls(settings))
    asyncio.run(ensure_topics(settings))
    ingress = Stage("ingest", env, tmp_path / "ingest.log").start()
    body = b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[]}]}'
    headers = {"x-hub-signature-256": sign(body, b"shop-secret")}
    url = f"http://127.0.0.1:{settings.http_port}/webhook"
    answers: list[int] = []
    try:
        for _ in range(120):
            try:
                answers.append(httpx.post(url, content=body, headers=headers).status_code)
                if answers[-1] == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert answers[-1] == 200, ingress.tail()
        grant(cluster, "revocable", write, remove=True)
        for _ in range(40):
            answers.append(httpx.post(url, content=body, headers=headers, timeout=30).status_code)
            time.sleep(0.25)
    finally:
        ingress.stop()
    assert answers[-1] == 503 and set(answers) <= {200, 503}
    # What was answered 200 is what the raw topic holds: no 200 without a write.
    stored = asyncio.run(count_records(settings))
    assert stored == answers.count(200)


async def count_records(settings: Settings) -> int:
    consumer = AIOKafkaConsumer(**kafka.client(settings))
    await consumer.start()
    try:
        partitions = [
            TopicPartition(settings.topics.raw, p) for p in range(settings.raw_partitions)
        ]
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        return sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        await consumer.stop()


def test_waflow_acls_prints_what_a_deployment_grants(cluster: Cluster, tmp_path: Path) -> None:
    env = cluster.env(tmp_path)
    done = waflow(env, "acls", "--principal", "User:waflow-prod")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines and all(line.startswith("kafka-acls.sh") for line in lines)
    prefix = Settings.from_env(env).topics.prefix
    assert any(f"--group {prefix}- --resource-pattern-type prefixed" in line for line in lines)


def test_mutual_tls_to_the_broker_with_a_client_certificate(
    cluster: Cluster, tmp_path: Path
) -> None:
    me = cluster.ca.issue("waflow-mtls", client=True, stem="waflow-mtls")
    base = stage_env(cluster.mtls, tmp_path)
    env = {
        **base,
        "WAFLOW_KAFKA_SECURITY_PROTOCOL": "SSL",
        "WAFLOW_KAFKA_SSL_CA": str(cluster.ca.pem),
        "WAFLOW_KAFKA_SSL_CERT": str(me.cert),
        "WAFLOW_KAFKA_SSL_KEY": str(me.key),
    }
    # The broker's principal for a certificate is its subject.
    grant(cluster, "CN=waflow-mtls", kafka.acls(Settings.from_env(env)))
    created = waflow(env, "topics")
    assert created.returncode == 0, created.stderr
    checked = waflow(env, "check", "--kafka-only")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    without = {k: v for k, v in env.items() if not k.startswith("WAFLOW_KAFKA_SSL_C")}
    without["WAFLOW_KAFKA_SSL_CA"] = str(cluster.ca.pem)
    refused = waflow(without, "sink")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("waflow: "), refused.stderr
    assert "WAFLOW_KAFKA_SSL_CERT" in refused.stderr, refused.stderr
