"""The production path: the fixed week of tests/test_analytics.py published
through Rasa's own pika broker to the RabbitMQ server on loopback, consumed
by a consumer that dies between its commit and its acknowledgement
(the batch comes back), then a second one; one event published twice.
The figures are exactly those of the SQL path."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from test_analytics import WEEK, all_events, shop_records, test_every_figure_of_a_fixed_week as check_the_fixed_week

from kefu.analytics.figures import compute
from kefu.analytics.rabbitmq import DEFAULT_URL, RabbitConsumer

pytestmark = [pytest.mark.e2e]


class DiesBeforeAcknowledging(RabbitConsumer):
    async def _acknowledge(self, messages):
        raise ConnectionError("consumer killed after its commit")


async def _queue_length(queue: str) -> int:
    import aio_pika

    connection = await aio_pika.connect(DEFAULT_URL)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def _run(engine, queue: str) -> None:
    import rasa.shared.core.events  # noqa: F401 - the broker logs through it, as inside a Rasa server
    from rasa.core.brokers.pika import PikaEventBroker

    broker = PikaEventBroker(
        "127.0.0.1", "guest", "guest", queues=[queue], connection_attempts=1, raise_on_failure=True
    )
    await broker.connect()
    events = all_events()
    half = len(events) // 2

    async def publish(batch):
        before = await _queue_length(queue)
        for event in batch:
            broker.publish(event)
        for _ in range(200):  # Rasa publishes in tasks of its own
            if await _queue_length(queue) >= before + len(batch):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("events did not reach the queue")

    try:
        await publish(events[:half])
        dying = DiesBeforeAcknowledging(engine, queue=queue, batch_size=10)
        await dying.connect()
        with pytest.raises(ConnectionError):
            await dying.consume_batch()
        await dying.close()  # its ten messages were committed, never acknowledged: they come back
        assert await _queue_length(queue) == half
        await publish(events[half:] + [next(e for e in events[half:] if e["event"] == "user")])
        consumer = RabbitConsumer(engine, queue=queue, batch_size=10)
        await consumer.connect()
        assert await consumer.drain() == len(events) + 1
        await consumer.close()
        assert await _queue_length(queue) == 0
    finally:
        await broker.close()
        import aio_pika

        connection = await aio_pika.connect(DEFAULT_URL)
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await connection.close()


def test_rabbitmq_path_gives_the_same_exact_figures(tmp_path):
    from kefu.db.engine import ensure_schema, make_engine

    try:
        asyncio.run(_probe())
    except Exception as exc:  # noqa: BLE001 - skip with the reason
        pytest.skip(f"RabbitMQ not reachable at {DEFAULT_URL}: {exc}")
    engine = make_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    ensure_schema(engine)
    shop_records(engine)
    asyncio.run(_run(engine, f"kefu_analytics_test_{uuid.uuid4().hex[:8]}"))
    check_the_fixed_week(engine)
    assert compute(engine, WEEK)["totals"]["user_messages"] == 11


async def _probe() -> None:
    import aio_pika

    connection = await aio_pika.connect(DEFAULT_URL, timeout=3)
    await connection.close()


class FirstWriteFails(RabbitConsumer):
    """A consumer whose database refuses its first batch, as one that is down would."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refusals = 1
        self.written: list[dict] = []

    def _apply(self, events):
        if self.refusals:
            self.refusals -= 1
            raise ConnectionRefusedError("database down")
        self.written.extend(events)


async def _publish_texts(exchange: str, queue: str, texts: list[str]) -> None:
    import json

    import aio_pika

    connection = await aio_pika.connect(DEFAULT_URL)
    try:
        channel = await connection.channel()
        declared = await channel.declare_exchange(exchange, type=aio_pika.ExchangeType.FANOUT)
        bound = await channel.declare_queue(queue, durable=True)
        await bound.bind(declared, "")
        for text in texts:
            event = {"event": "user", "sender_id": "consumer-test", "text": text, "timestamp": 1.0}
            await declared.publish(aio_pika.Message(json.dumps([event]).encode()), routing_key="")
    finally:
        await connection.close()


def _close_from_the_server(connection_name: str) -> None:
    import subprocess

    listed = subprocess.run(
        ["rabbitmqctl", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pids = [line.split()[0] for line in listed.splitlines() if connection_name in line]
    assert pids, f"no connection named {connection_name}: {listed}"
    for pid in pids:
        subprocess.run(["rabbitmqctl", "close_connection", pid, "test"], capture_output=True, timeout=60, check=True)


async def _written_texts(consumer: FirstWriteFails, count: int, seconds: float = 30) -> list[str]:
    for _ in range(int(seconds * 10)):
        if len(consumer.written) >= count:
            break
        await asyncio.sleep(0.1)
    return sorted(event["text"] for event in consumer.written)


async def _consume_through_failures(engine, exchange: str, queue: str) -> None:
    import aio_pika

    name = f"kefu-test-consumer-{uuid.uuid4().hex[:8]}"
    consumer = FirstWriteFails(engine, url=f"{DEFAULT_URL}?name={name}", queue=queue, exchange=exchange)
    running = asyncio.create_task(consumer.run(idle_seconds=0.1))
    try:
        await _publish_texts(exchange, queue, ["一", "二", "三"])
        # The refused batch was neither written nor acknowledged: it comes back.
        assert await _written_texts(consumer, 3) == sorted(["一", "二", "三"])
        await asyncio.to_thread(_close_from_the_server, name)
        await _publish_texts(exchange, queue, ["四", "五"])
        assert await _written_texts(consumer, 5) == sorted(["一", "二", "三", "四", "五"])
        assert not running.done()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        connection = await aio_pika.connect(DEFAULT_URL)
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
        await connection.close()


def test_the_consumer_goes_on_after_a_refused_write_and_a_closed_connection(tmp_path):
    """Whatever fails, the consumer connects again by itself (it no longer
    relies on aio-pika's robust connection, which can stop trying) and what it
    had taken without acknowledging comes back."""
    import os
    import shutil

    from kefu.db.engine import make_engine

    if shutil.which("rabbitmqctl") is None or os.geteuid() != 0:
        pytest.skip("rabbitmqctl (as root) is needed to close a connection from the server")
    try:
        asyncio.run(_probe())
    except Exception as exc:  # noqa: BLE001 - skip with the reason
        pytest.skip(f"RabbitMQ not reachable at {DEFAULT_URL}: {exc}")
    engine = make_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    name = uuid.uuid4().hex[:8]
    asyncio.run(_consume_through_failures(engine, f"kefu-test-{name}", f"kefu_test_{name}"))
