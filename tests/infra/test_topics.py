from aiokafka.partitioner import DefaultPartitioner

from infra.core.topics import Existing, TopicSpec, partition_for, plan


def test_every_key_lands_where_kafkas_partitioner_puts_it() -> None:
    """Claims written before the batched format were placed by the partitioner; they must still
    be on the partition that looks them up, and a typed record on the partition any other
    producer of its key (replay) uses."""
    partitioner = DefaultPartitioner()
    for count in (1, 6, 12):
        parts = list(range(count))
        keys = [f"wamid.{i}".encode() for i in range(500)] + [
            b"",
            "wabá".encode(),
            bytes(range(97)),
        ]
        for key in keys:
            assert partition_for(key, count) == partitioner(key, parts, parts)


def spec(name: str, partitions: int, **config: str) -> TopicSpec:
    return TopicSpec(name, partitions, tuple((k.replace("_", "."), v) for k, v in config.items()))


def test_plan_creates_missing_sets_differing_configs_and_only_grows_partitions() -> None:
    declared = [
        spec("raw", 6, retention_ms="1209600000"),
        spec("typed", 6, retention_ms="1"),
        spec("wide", 3),
        spec("same", 6, retention_ms="5"),
    ]
    existing = {
        "raw": Existing(6, (("retention.ms", "604800000"), ("cleanup.policy", "delete"))),
        "typed": Existing(3, (("retention.ms", "1"),)),
        "wide": Existing(12, ()),
        "same": Existing(6, (("retention.ms", "5"),)),
    }
    changes = {c.topic: c for c in plan(declared, existing)}
    assert set(changes) == {"raw", "typed", "wide"}
    assert changes["raw"].config == (("retention.ms", "604800000", "1209600000"),)
    assert changes["typed"].partitions == (3, 6) and not changes["typed"].config
    assert changes["wide"].partitions is None and "cannot remove" in changes["wide"].warning
    assert "keys move" in changes["typed"].lines()[0]
    assert plan(declared, {})[0].create == declared[0]
