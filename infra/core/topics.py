"""Every Kafka topic waflow uses, declared in one place, created, and kept as declared.

`plan` compares the declaration with what the cluster has (a pure function of both), and
`reconcile_topics` applies the plan: missing topics are created, configurations that differ are
set, partition counts only ever grow. `waflow topics [--dry-run]` prints the plan.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from murmurhash2 import murmurhash2

from infra.core import kafka
from infra.core.errors import BrokerError
from infra.core.settings import Settings
from schemas.catalog import TYPED

DAY_MS = 24 * 3600 * 1000
KAFKA_SEED = 0x9747B28C


def partition_for(key: bytes, count: int) -> int:
    """The partition Kafka's default partitioner gives `key` (murmur2), for the writers that
    place records themselves: it keeps each key where any other producer would put it."""
    hashed: int = murmurhash2(key, KAFKA_SEED)
    return (hashed & 0x7FFFFFFF) % count


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: tuple[tuple[str, str], ...]


def declared(settings: Settings) -> list[TopicSpec]:
    """The topics and why each is configured so.

    The raw topic is the only copy of what the platform sent (it has no history API): it keeps
    `raw_retention_days` so `waflow replay` can rebuild everything after a normalizer fix. Typed
    topics are keyed by their record id; they are not compacted because downstream consumers read
    them as event streams and the sink dedups on the id itself. The schemas topic holds each
    writer schema a typed record may name (schemas.codec.publication).
    """
    t = settings.topics
    n = settings.raw_partitions
    isr = str(min(2, settings.replication_factor))
    common = (("min.insync.replicas", isr), ("compression.type", "producer"))
    raw_ms = str(settings.raw_retention_days * DAY_MS)
    typed_ms = str(max(settings.dedup_window_days + 7, 14) * DAY_MS)
    return [
        TopicSpec(t.raw, n, (*common, ("retention.ms", raw_ms), ("max.message.bytes", "8388608"))),
        *(TopicSpec(t.typed(k.kind), n, (*common, ("retention.ms", typed_ms))) for k in TYPED),
        TopicSpec(t.items, n, (*common, ("retention.ms", str(3 * DAY_MS)))),
        # The business writes its flow sends here (JSON, sink/sends.py); the sink loads them.
        TopicSpec(t.sends, n, (*common, ("retention.ms", typed_ms))),
        # Created here rather than by the worker: on a cluster a worker that creates it at
        # start-up can see it with 0 partitions for a while, and its table then fails.
        TopicSpec(
            t.claims_changelog,
            n,
            (
                *common,
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", str(settings.dedup_window_days * DAY_MS)),
            ),
        ),
        TopicSpec(
            t.dlq,
            n,
            (*common, ("retention.ms", str(30 * DAY_MS)), ("max.message.bytes", "8388608")),
        ),
        # Every writer schema, keyed by fingerprint: compacted, so it keeps one copy of each for
        # as long as the cluster lives; one partition keeps them in publication order.
        TopicSpec(t.schemas, 1, (*common, ("cleanup.policy", "compact"))),
    ]


@dataclass(frozen=True)
class Existing:
    """A topic as the cluster has it: partition count, and every config value it reports."""

    partitions: int
    config: tuple[tuple[str, str], ...]
    # Configs set on the topic itself (not defaults): kept when others change, because Kafka's
    # AlterConfigs replaces the whole set of a topic's own configs.
    own: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Change:
    topic: str
    create: TopicSpec | None = None
    config: tuple[tuple[str, str, str], ...] = ()  # (key, now, wanted)
    partitions: tuple[int, int] | None = None  # (now, wanted), only ever up
    warning: str = ""

    def lines(self) -> list[str]:
        if self.create is not None:
            return [f"create {self.topic} ({self.create.partitions} partitions)"]
        out = [f"set {self.topic} {key}: {now} -> {wanted}" for key, now, wanted in self.config]
        if self.partitions:
            now, wanted = self.partitions
            out.append(
                f"grow {self.topic} partitions: {now} -> {wanted} (keys move: per-key order "
                "holds only for records written after the change)"
            )
        if self.warning:
            out.append(f"warning: {self.topic}: {self.warning}")
        return out


def plan(declared_topics: list[TopicSpec], existing: dict[str, Existing]) -> list[Change]:
    """What to do so the cluster has what is declared. Partitions never shrink (Kafka cannot)."""
    changes = []
    for spec in declared_topics:
        have = existing.get(spec.name)
        if have is None:
            changes.append(Change(spec.name, create=spec))
            continue
        current = dict(have.config)
        differ = tuple(
            (key, current.get(key, "(unset)"), value)
            for key, value in spec.config
            if current.get(key) != value
        )
        grow = (have.partitions, spec.partitions) if spec.partitions > have.partitions else None
        warning = (
            f"has {have.partitions} partitions, more than the {spec.partitions} declared; "
            "Kafka cannot remove partitions, so it keeps them"
            if spec.partitions < have.partitions
            else ""
        )
        if differ or grow or warning:
            changes.append(Change(spec.name, config=differ, partitions=grow, warning=warning))
    return changes


async def reconcile_topics(
    settings: Settings, dry_run: bool = False, attempts: int = 30
) -> list[Change]:
    """Bring every declared topic to its declaration (or, with `dry_run`, only say how)."""
    admin = await _admin(settings, attempts)
    try:
        specs = declared(settings)
        existing = await _existing(admin, [s.name for s in specs])
        changes = plan(specs, existing)
        if dry_run:
            return changes
        await _create(admin, settings, [c.create for c in changes if c.create is not None])
        altered = [c for c in changes if c.config]
        if altered:
            resources = []
            for change in altered:
                spec = next(s for s in specs if s.name == change.topic)
                merged = {**dict(existing[change.topic].own), **dict(spec.config)}
                resources.append(ConfigResource(ConfigResourceType.TOPIC, change.topic, merged))
            for answer in await admin.alter_configs(resources):
                failed = [(r[2], r[1]) for r in answer.resources if r[0]]
                if failed:
                    raise BrokerError(f"Kafka refused the config changes: {failed}")
        grown = {c.topic: NewPartitions(c.partitions[1]) for c in changes if c.partitions}
        if grown:
            await admin.create_partitions(grown)
        return changes
    finally:
        await admin.close()


async def _existing(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, Existing]:
    present = set(await admin.list_topics()) & set(names)
    if not present:
        return {}
    counts = {
        d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(sorted(present))
    }
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in sorted(present)]
    out = {}
    for answer in await admin.describe_configs(resources):
        for _, _, _, name, entries in answer.resources:
            config = tuple((e[0], e[1]) for e in entries)
            own = tuple((e[0], e[1]) for e in entries if e[3] == TOPIC_CONFIG_SOURCE)
            out[name] = Existing(counts[name], config, own)
    return out


TOPIC_CONFIG_SOURCE = 1  # DescribeConfigs' DYNAMIC_TOPIC_CONFIG: set on the topic itself


async def _admin(settings: Settings, attempts: int) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**kafka.client(settings))
    for attempt in range(attempts):
        try:
            await admin.start()
            break
        except KafkaError as exc:
            if attempt == attempts - 1:
                raise BrokerError(
                    f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}"
                ) from exc
            await asyncio.sleep(1)
    return admin


async def _create(admin: AIOKafkaAdminClient, settings: Settings, specs: list[TopicSpec]) -> None:
    if not specs:
        return
    new = [
        NewTopic(s.name, s.partitions, settings.replication_factor, topic_configs=dict(s.config))
        for s in specs
    ]
    # Another process may create them between list and create: that is success too.
    with contextlib.suppress(TopicAlreadyExistsError):
        answer = await admin.create_topics(new)
        failed = [(e[0], e[2]) for e in answer.topic_errors if e[1] not in (0, 36)]
        if failed:  # 36: TOPIC_ALREADY_EXISTS
            raise BrokerError(f"Kafka refused to create topics: {failed}")


async def ensure_topics(settings: Settings, attempts: int = 30) -> list[str]:
    """Create the declared topics that do not exist yet; return the names created. Existing
    topics are left as they are (`reconcile_topics` changes them)."""
    admin = await _admin(settings, attempts)
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in declared(settings) if s.name not in existing]
        await _create(admin, settings, missing)
        return [s.name for s in missing]
    finally:
        await admin.close()
