"""A real Apache Kafka broker in KRaft combined mode, fetched as jars from Maven Central.

`fetch` resolves the broker with Maven into <data_dir>/kafka/lib once (later starts need no
network); `start` formats each node's log directory on first use and launches one JVM per node
(a 3-node cluster uses the same code with static controller voters); `stop` ends them.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from infra.core.errors import BrokerError
from infra.core.kafka import Acl

POM = Path(__file__).parent.parent / "kafka" / "pom.xml"
HEAP = os.environ.get("WAFLOW_KAFKA_HEAP", "512m")  # read by the CLI process only
LOG4J = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


@dataclass(frozen=True)
class Node:
    node_id: int
    port: int
    controller_port: int
    home: Path

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"


@dataclass(frozen=True)
class Secured:
    """A SASL_SSL listener beside the PLAINTEXT one, as a managed cluster has.

    Clients log in with SCRAM-SHA-512 as one of `users` (created when the storage is formatted)
    over TLS with the PEM `keystore` (the broker's private key and certificate chain), and
    Kafka's StandardAuthorizer allows a principal only what ACLs grant it. The PLAINTEXT
    listener stays on loopback as the administrator's door: its anonymous principal is the one
    super user, which the controller and `grant` use.

    With `client_ca` and `mtls_port`, an SSL listener there requires a client certificate
    signed by that CA; its principal is the certificate's subject (`User:CN=...`).
    """

    port: int
    keystore: Path
    users: tuple[tuple[str, str], ...] = field(repr=False)
    client_ca: Path | None = None
    mtls_port: int = 0

    def port_of(self, node: Node) -> int:
        return self.port + node.node_id - 1

    def mtls_port_of(self, node: Node) -> int:
        return self.mtls_port + node.node_id - 1


SCRAM = "SCRAM-SHA-512"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def nodes_for(data_dir: Path, count: int = 1, base_port: int = 9092) -> list[Node]:
    root = data_dir / "kafka" / ("node" if count == 1 else f"cluster{count}-{base_port}")
    return [
        Node(i, base_port + i - 1, base_port + 1000 + i - 1, root / str(i))
        for i in range(1, count + 1)
    ]


def lib_dir(data_dir: Path) -> Path:
    return data_dir / "kafka" / "lib"


def fetch(data_dir: Path) -> Path:
    """Copy the broker's jars from Maven Central (or ~/.m2) once; later calls do no I/O."""
    lib = lib_dir(data_dir).absolute()  # Maven resolves relative paths against the pom's folder
    marker = lib / ".complete"
    if marker.exists() and marker.read_text() == POM.read_text():
        return lib
    _require("java", "Install Java 17+ (Debian: apt-get install openjdk-17-jre-headless).")
    _require("mvn", "Install Maven 3.8+ (Debian: apt-get install maven).")
    shutil.rmtree(lib, ignore_errors=True)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={lib}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BrokerError(f"Maven could not fetch Kafka ({' '.join(cmd)}):\n{done.stdout[-2000:]}")
    marker.write_text(POM.read_text())
    return lib


def start(
    data_dir: Path,
    count: int = 1,
    base_port: int = 9092,
    wait_s: float = 90,
    jars_dir: Path | None = None,
    secured: Secured | None = None,
) -> str:
    """Start `count` nodes (already running ones are left alone); return the bootstrap string
    of the PLAINTEXT listeners (`secured.port` and up serve SASL_SSL when given).

    `jars_dir` is where the jars are cached (default: `data_dir`); tests keep the project's
    cache but put the nodes' data in a temporary directory.
    """
    lib = fetch(jars_dir or data_dir)
    nodes = nodes_for(data_dir, count, base_port)
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
    cluster_id = _cluster_id(nodes[0].home.parent)
    for node in nodes:
        if not is_running(node):
            start_node(node, lib, voters, cluster_id, count, secured)
    deadline = time.monotonic() + wait_s
    for node in nodes:
        _wait_for_port(node, deadline)
    return ",".join(f"127.0.0.1:{n.port}" for n in nodes)


def start_node(
    node: Node, lib: Path, voters: str, cluster_id: str, count: int, secured: Secured | None = None
) -> None:
    node.home.mkdir(parents=True, exist_ok=True)
    config = node.home / "server.properties"
    config.write_text(_server_properties(node, voters, count, secured))
    (node.home / "log4j2.properties").write_text(LOG4J.format(log=node.home / "server.log"))
    classpath = f"{lib}/*"
    if not (node.home / "data" / "meta.properties").exists():
        fmt = format_command(classpath, cluster_id, config, secured.users if secured else ())
        done = subprocess.run(fmt, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokerError(f"formatting {node.home} failed:\n{done.stdout}{done.stderr}")
    cmd = [
        "java",
        f"-Xms{HEAP}",
        f"-Xmx{HEAP}",
        "-XX:+UseG1GC",
        # Kafka's own start script's GC flags: G1's default pause goal is 200 ms, and a pause
        # holds every acks=all answer waiting behind it.
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        f"-Dlog4j2.configurationFile={node.home / 'log4j2.properties'}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(config),
    ]
    with open(node.home / "stdout.log", "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    node.pid_file.write_text(str(proc.pid))


def stop(data_dir: Path, count: int = 1, base_port: int = 9092, timeout_s: float = 30) -> None:
    for node in nodes_for(data_dir, count, base_port):
        stop_node(node, timeout_s)


def stop_node(node: Node, timeout_s: float = 30, sig: int = signal.SIGTERM) -> None:
    pid = _pid(node)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    node.pid_file.unlink(missing_ok=True)


def is_running(node: Node) -> bool:
    pid = _pid(node)
    return pid is not None and _alive(pid)


def _server_properties(node: Node, voters: str, count: int, secured: Secured | None = None) -> str:
    rf = min(count, 3)
    listeners = f"PLAINTEXT://127.0.0.1:{node.port}"
    security: list[str] = []
    if secured is not None:
        listeners += f",SASL_SSL://127.0.0.1:{secured.port_of(node)}"
        security = [
            f"sasl.enabled.mechanisms={SCRAM}",
            f"listener.name.sasl_ssl.{SCRAM.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={secured.keystore}",
            f"authorizer.class.name={AUTHORIZER}",
            "super.users=User:ANONYMOUS",
            "allow.everyone.if.no.acl.found=false",
        ]
        if secured.client_ca is not None and secured.mtls_port:
            listeners += f",SSL://127.0.0.1:{secured.mtls_port_of(node)}"
            security += [
                "listener.name.ssl.ssl.client.auth=required",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={secured.client_ca}",
            ]
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners={listeners},CONTROLLER://127.0.0.1:{node.controller_port}",
            f"advertised.listeners={listeners}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map="
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
            *security,
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={node.home / 'data'}",
            "auto.create.topics.enable=false",
            f"offsets.topic.replication.factor={rf}",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={min(rf, 2)}",
            f"share.coordinator.state.topic.replication.factor={rf}",
            f"share.coordinator.state.topic.min.isr={min(rf, 2)}",
            "group.initial.rebalance.delay.ms=0",
            "",
        ]
    )


def format_command(
    classpath: str, cluster_id: str, config: Path, users: tuple[tuple[str, str], ...] = ()
) -> list[str]:
    # `--cluster-id=<id>`, not `-t <id>`: a random base64 id starts with '-' one time in 64, and
    # the storage tool's parser then takes it for an option and refuses to format.
    return [
        "java",
        "-cp",
        classpath,
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cluster_id}",
        f"--config={config}",
        "--ignore-formatted",
        *(f"--add-scram={SCRAM}=[name={name},password={password}]" for name, password in users),
    ]


def grant(
    data_dir: Path, bootstrap: str, principal: str, acls: list[Acl], remove: bool = False
) -> None:
    """Add (or remove) ACLs with Kafka's own AclCommand, through the administrator's PLAINTEXT
    door. `data_dir` holds the jars."""
    classpath = f"{lib_dir(data_dir)}/*"
    action = ["--remove", "--force"] if remove else ["--add"]
    for acl in acls:
        cmd = ["java", "-cp", classpath, "org.apache.kafka.tools.AclCommand"]
        cmd += ["--bootstrap-server", bootstrap, *action, *acl.arguments(principal)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokerError(f"granting {acl} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")


def _cluster_id(root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "cluster.id"
    if not path.exists():
        path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode())
    return path.read_text().strip()


def _wait_for_port(node: Node, deadline: float) -> None:
    while time.monotonic() < deadline:
        if not is_running(node):
            raise BrokerError(
                f"Kafka node {node.node_id} exited during start-up:\n"
                f"{_tail(node.home / 'stdout.log')}"
                f"\n--- {node.home / 'server.log'}:\n{_tail(node.home / 'server.log')}"
            )
        try:
            with socket.create_connection(("127.0.0.1", node.port), timeout=1):
                return
        except OSError:
            time.sleep(0.25)
    raise BrokerError(
        f"Kafka node {node.node_id} did not open port {node.port} in time; "
        f"see {node.home / 'server.log'}"
    )


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return "(none)"


def _require(tool: str, how: str) -> None:
    if shutil.which(tool) is None:
        raise BrokerError(f"`{tool}` is not on PATH; waflow fetches and runs Kafka with it. {how}")


def _pid(node: Node) -> int | None:
    try:
        return int(node.pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
