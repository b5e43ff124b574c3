"""Every Kafka client's connection settings, from one place: the bootstrap hosts, TLS and SASL.

The ingress producer, the stream worker (Faust), the sink consumer and every command (topics,
replay, reconcile, status, check) get their connection from here, so a managed, secured cluster
(MSK, Confluent Cloud, Aiven, Redpanda Cloud, Strimzi) is reached the same way by all of them.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from infra.core.errors import SettingsError
from infra.core.settings import KafkaSecurity, Settings


def tls_context(security: KafkaSecurity) -> ssl.SSLContext:
    """Server verification against WAFLOW_KAFKA_SSL_CA (default: the system's trust store, which
    managed services' public certificates chain to), with a client certificate if given."""
    try:
        ctx = ssl.create_default_context(
            cafile=str(security.ssl_ca) if security.ssl_ca is not None else None
        )
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if security.ssl_cert is not None and security.ssl_key is not None:
            ctx.load_cert_chain(str(security.ssl_cert), str(security.ssl_key))
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            f"cannot load WAFLOW_KAFKA_SSL_CA/WAFLOW_KAFKA_SSL_CERT/WAFLOW_KAFKA_SSL_KEY: {exc}"
        ) from exc
    return ctx


def auth(settings: Settings) -> dict[str, Any]:
    """aiokafka's security keyword arguments (for producers, consumers and the admin client)."""
    security = settings.kafka_security
    out: dict[str, Any] = {"security_protocol": security.protocol}
    if security.tls:
        out["ssl_context"] = tls_context(security)
    if security.sasl:
        out["sasl_mechanism"] = security.sasl_mechanism
        out["sasl_plain_username"] = security.sasl_username
        out["sasl_plain_password"] = security.sasl_password
    return out


def client(settings: Settings) -> dict[str, Any]:
    """aiokafka's connection keyword arguments: every bootstrap host, and the security."""
    return {"bootstrap_servers": list(settings.kafka_hosts), **auth(settings)}


# Every waflow producer: a write counts once all in-sync replicas have it, a retried batch is
# not written twice, and batches are zstd (aiokafka's lz4 runs at level 9, a fifth of zstd's
# speed on webhook JSON for a third more bytes).
ACKS = "all"
COMPRESSION = "zstd"
MAX_BATCH_BYTES = 1024 * 1024


def producer(settings: Settings, **tuning: Any) -> dict[str, Any]:
    """aiokafka producer keyword arguments: the connection, the durability every waflow producer
    has, and the caller's `tuning` (linger, sizes, timeouts)."""
    return {
        **client(settings),
        "acks": ACKS,
        "enable_idempotence": True,
        "compression_type": COMPRESSION,
        "max_batch_size": MAX_BATCH_BYTES,
        **tuning,
    }


def faust_producer() -> dict[str, Any]:
    """The same durability for Faust's producer (its settings are named `producer_*`)."""
    return {"producer_acks": -1, "producer_compression_type": COMPRESSION}


def faust_broker(settings: Settings) -> list[str]:
    """Faust's broker URLs: every bootstrap host, so the worker starts while one is down."""
    return [f"kafka://{host}" for host in settings.kafka_hosts]


def faust_credentials(settings: Settings) -> Any:
    """Faust's `broker_credentials` (None for PLAINTEXT)."""
    import faust

    security = settings.kafka_security
    if security.sasl:
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password,
            mechanism=security.sasl_mechanism,
            ssl_context=tls_context(security) if security.tls else None,
        )
    if security.tls:
        return faust.SSLCredentials(tls_context(security))
    return None


@dataclass(frozen=True)
class Acl:
    """Allow `principal` the `operations` on resources of `kind` named `name` (a prefix when
    `prefixed`): what `kafka-acls.sh --add` takes."""

    kind: str  # topic, group, transactional-id
    name: str
    prefixed: bool
    operations: tuple[str, ...]

    def arguments(self, principal: str) -> list[str]:
        ops = [arg for op in self.operations for arg in ("--operation", op)]
        pattern = ["--resource-pattern-type", "prefixed"] if self.prefixed else []
        return ["--allow-principal", principal, *ops, f"--{self.kind}", self.name, *pattern]

    def command(self, principal: str) -> str:
        """The `kafka-acls.sh` line that grants it (`waflow acls` prints these)."""
        add = "kafka-acls.sh --bootstrap-server $ADMIN_BOOTSTRAP --add"
        return " ".join([add, *self.arguments(principal)])


def acls(settings: Settings) -> list[Acl]:
    """What waflow's principal needs, on its own topics and groups only.

    Topics are `<prefix>.*` (waflow's) and `<prefix>-*` (the stream worker's changelog and
    Faust's leader topic); groups are `<prefix>-streams` and `<prefix>-sink`. CREATE,
    DESCRIBE_CONFIGS, ALTER_CONFIGS and ALTER are for `waflow topics`; run that as another
    principal and the stages need only READ, WRITE and DESCRIBE (Faust still creates its leader
    topic: keep CREATE on `<prefix>-`).
    """
    p = settings.topics.prefix
    admin = ("Create", "DescribeConfigs", "AlterConfigs", "Alter")
    out = [
        Acl("topic", f"{p}.", True, ("Read", "Write", "Describe", *admin)),
        Acl("topic", f"{p}-", True, ("Read", "Write", "Describe", *admin)),
        Acl("group", f"{p}-", True, ("Read", "Describe")),
    ]
    if settings.streams_guarantee == "exactly_once":
        out.append(Acl("transactional-id", f"{p}-", True, ("Write", "Describe")))
    return out
