"""The schemas topic (`<prefix>.schemas`): every writer schema waflow has used, so a consumer that
meets a fingerprint it does not know can look it up at run time (docs/consumers.md).

The stream stage and replay publish before their first typed record; `waflow schemas` reads the
topic back. The records themselves are schemas.codec.publication's.
"""

from __future__ import annotations

import json
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.core import kafka
from infra.core.errors import BrokerError
from infra.core.settings import Settings
from schemas.codec import codec, publication


async def publish(settings: Settings) -> int:
    """Write every writer schema to the schemas topic and wait for the broker to have them."""
    entries = publication(codec())
    producer = AIOKafkaProducer(**kafka.producer(settings))
    try:
        await producer.start()
        sent = [await producer.send(settings.topics.schemas, v, key=k) for k, v in entries]
        for future in sent:
            await future
    except Exception as exc:
        raise BrokerError(f"cannot publish to {settings.topics.schemas}: {exc}") from exc
    finally:
        await producer.stop()
    return len(entries)


async def read(settings: Settings, timeout_ms: int = 10_000) -> list[dict[str, Any]]:
    """Every schema on the topic, the latest record of each fingerprint, in publication order."""
    tp = TopicPartition(settings.topics.schemas, 0)
    consumer = AIOKafkaConsumer(**kafka.client(settings), enable_auto_commit=False)
    found: dict[str, dict[str, Any]] = {}
    try:
        await consumer.start()
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=timeout_ms)
            if not batch:
                raise BrokerError(f"{tp.topic} stopped answering before its end offset {end}")
            for record in batch[tp]:
                if record.value is not None:
                    value = json.loads(record.value)
                    found.pop(value["fingerprint"], None)
                    found[value["fingerprint"]] = value
    except BrokerError:
        raise
    except Exception as exc:
        raise BrokerError(f"cannot read {tp.topic}: {exc}") from exc
    finally:
        await consumer.stop()
    return list(found.values())
