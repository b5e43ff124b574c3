from aiokafka.partitioner import DefaultPartitioner

from infra.topics import partition_for


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
