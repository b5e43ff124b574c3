"""Can this process do its job on this Kafka? One line per problem, each naming what to fix.

Every stage runs it at start-up, and `waflow check` runs it for all of them. A refusal (a
certificate not trusted, a login refused, an ACL or topic missing) is `permanent`: retrying
cannot fix it, so the stage stops with the line instead of retrying silently. A broker that
does not answer is not permanent: the ingress still starts and answers 503 until it does.

What a principal may do on each topic comes from the broker itself (Metadata v8's
`topic_authorized_operations`, the field `kafka-topics --describe` shows as authorized
operations), so a missing READ or WRITE is found before the first record, not at it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int16, Int32, Schema, String

from infra.core import kafka
from infra.core.settings import Settings

# Kafka's AclOperation codes; authorized operations are a bit field of them.
OPERATIONS = {"Read": 3, "Write": 4, "Create": 5, "Alter": 7, "Describe": 8}
UNKNOWN_TOPIC = 3
TOPIC_AUTHORIZATION_FAILED = 29


@dataclass(frozen=True)
class Problem:
    line: str
    permanent: bool = True


@dataclass(frozen=True)
class Needs:
    """The operations a process needs on each topic and consumer group."""

    topics: tuple[tuple[str, tuple[str, ...]], ...]
    groups: tuple[str, ...] = ()


def needs_of(stage: str, settings: Settings) -> Needs:
    t = settings.topics
    typed = t.sink_inputs
    if stage == "ingest":
        return Needs(((t.raw, ("Describe", "Write")),))
    if stage == "streams":
        return Needs(
            (
                (t.raw, ("Describe", "Read")),
                (t.items, ("Describe", "Read", "Write")),
                (t.claims_changelog, ("Describe", "Read", "Write")),
                (t.schemas, ("Describe", "Write")),
                *((name, ("Describe", "Write")) for name in typed),
            ),
            (t.streams_group,),
        )
    if stage == "sink":
        reads = (*typed, t.sends)
        return Needs(tuple((name, ("Describe", "Read")) for name in reads), (t.sink_group,))
    raise ValueError(stage)


def principal(settings: Settings) -> str:
    security = settings.kafka_security
    return f"User:{security.sasl_username}" if security.sasl else "your principal"


async def check(settings: Settings, needs: Needs, timeout_s: float = 10) -> list[Problem]:
    """Every problem found, or [] when the process can do its job."""
    logins = [await login(settings, host, timeout_s) for host in settings.kafka_hosts]
    problems = [p for p in logins if p is not None]
    if len(problems) == len(logins):  # no host let us in: nothing more can be learnt
        return problems
    return [p for p in problems if p.permanent] + await access(settings, needs)


async def login(settings: Settings, host: str, timeout_s: float) -> Problem | None:
    """Connect to one bootstrap host with the configured TLS and SASL."""
    security = settings.kafka_security
    name, port = host_port(host)
    try:
        conn = await asyncio.wait_for(
            create_conn(
                name, port, request_timeout_ms=int(timeout_s * 1000), **kafka.auth(settings)
            ),
            timeout_s,
        )
    except ssl.SSLCertVerificationError as exc:
        return Problem(
            f"Kafka at {host}: its certificate is not trusted ({exc.verify_message}): set "
            "WAFLOW_KAFKA_SSL_CA to the CA that signed the broker's certificate"
        )
    except ssl.SSLError as exc:
        return Problem(
            f"Kafka at {host}: TLS failed ({exc.reason}): check WAFLOW_KAFKA_SECURITY_PROTOCOL="
            f"{security.protocol} against the port, and WAFLOW_KAFKA_SSL_CERT/KEY"
        )
    except SaslAuthenticationFailed:
        return Problem(
            f"Kafka at {host} refused the login of WAFLOW_KAFKA_SASL_USERNAME="
            f"{security.sasl_username} with {security.sasl_mechanism}: check "
            "WAFLOW_KAFKA_SASL_PASSWORD(_FILE) and WAFLOW_KAFKA_SASL_MECHANISM"
        )
    except UnsupportedSaslMechanismError:
        return Problem(
            f"Kafka at {host} does not enable WAFLOW_KAFKA_SASL_MECHANISM="
            f"{security.sasl_mechanism}: set the mechanism your cluster enables"
        )
    except (TimeoutError, KafkaError, OSError) as exc:
        return Problem(f"cannot reach Kafka at {host}: {type(exc).__name__}", permanent=False)
    conn.close()
    return None


async def access(settings: Settings, needs: Needs) -> list[Problem]:
    """Missing topics and missing ACLs, as the broker reports them for this principal."""
    who = principal(settings)
    admin = AIOKafkaAdminClient(**kafka.client(settings))
    try:
        await admin.start()
        names = [name for name, _ in needs.topics]
        found = {t.name: t for t in await topic_access(admin, names)}
        problems = []
        for name, wanted in needs.topics:
            topic = found.get(name)
            if topic is None or topic.error == UNKNOWN_TOPIC:
                problems.append(Problem(f"topic {name} does not exist: run `waflow topics`"))
            elif topic.error == TOPIC_AUTHORIZATION_FAILED:
                problems.append(Problem(f"missing ACL: allow {who} Describe on topic {name}"))
            else:
                missing = [op for op in wanted if not topic.allows(op)]
                if missing:
                    ops = ", ".join(missing)
                    problems.append(Problem(f"missing ACL: allow {who} {ops} on topic {name}"))
        for group in needs.groups:
            problems.extend(await group_access(admin, group, who))
        return problems
    except KafkaError as exc:
        return [Problem(f"Kafka at {settings.kafka_bootstrap}: {exc}", permanent=False)]
    finally:
        await admin.close()


async def group_access(admin: AIOKafkaAdminClient, group: str, who: str) -> list[Problem]:
    """No ACL on the group fails the coordinator lookup; a group the broker describes also says
    (DescribeGroups v3+) whether Read is allowed. A coordinator not ready yet is no problem."""
    try:
        [answer] = await admin.describe_consumer_groups([group], include_authorized_operations=True)
    except GroupAuthorizationFailedError:
        return [Problem(f"missing ACL: allow {who} Read, Describe on group {group}")]
    except KafkaError:
        return []
    fields = answer.groups[0]
    allowed = fields[-1] if isinstance(fields[-1], int) else -1
    if fields[0] == 0 and allowed >= 0 and not allowed & (1 << OPERATIONS["Read"]):
        return [Problem(f"missing ACL: allow {who} Read on group {group}")]
    return []


def host_port(host: str) -> tuple[str, int]:
    name, _, port = host.rpartition(":")
    return name.strip("[]"), int(port)


@dataclass(frozen=True)
class TopicAccess:
    name: str
    error: int
    operations: int  # the bit field; -2147483648 when the broker did not say

    def allows(self, operation: str) -> bool:
        return self.operations < 0 or bool(self.operations & (1 << OPERATIONS[operation]))


async def topic_access(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> list[TopicAccess]:
    """Metadata v8 for `topics`, with the operations this principal is authorized for."""
    answer: Any = await admin._send_request(AuthorizedMetadata(list(topics)))
    return [TopicAccess(t[1], t[0], t[-1]) for t in answer.topics]


class MetadataResponse_v8(Response):  # type: ignore[misc]  # aiokafka names it so
    API_KEY = 3
    API_VERSION = 8
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            Array(
                ("node_id", Int32),
                ("host", String("utf-8")),
                ("port", Int32),
                ("rack", String("utf-8")),
            ),
        ),
        ("cluster_id", String("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            Array(
                ("error_code", Int16),
                ("topic", String("utf-8")),
                ("is_internal", Boolean),
                (
                    "partitions",
                    Array(
                        ("error_code", Int16),
                        ("partition", Int32),
                        ("leader", Int32),
                        ("leader_epoch", Int32),
                        ("replicas", Array(Int32)),
                        ("isr", Array(Int32)),
                        ("offline_replicas", Array(Int32)),
                    ),
                ),
                ("topic_authorized_operations", Int32),
            ),
        ),
        ("cluster_authorized_operations", Int32),
    )


class MetadataRequest_v8(RequestStruct):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 8
    RESPONSE_TYPE = MetadataResponse_v8
    SCHEMA = Schema(
        ("topics", Array(String("utf-8"))),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
    )


class AuthorizedMetadata(Request[MetadataRequest_v8]):  # type: ignore[misc]
    API_KEY = 3

    def __init__(self, topics: list[str]) -> None:
        self.topics = topics

    def build(self, request_struct_class: type[MetadataRequest_v8]) -> MetadataRequest_v8:
        return request_struct_class(self.topics, False, False, True)
