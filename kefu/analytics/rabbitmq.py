"""The production path: Rasa's `pika` event broker (Kefu's, which sends a
turn's events in one message: `events_in_message`) publishes the events to
RabbitMQ (exchange `rasa-exchange`, fanout, into a durable queue with
persistent messages); this consumer takes them in batches, writes the
analytics rows with the same writer as the SQL path, commits, and only then
acknowledges. A crash between commit and acknowledgement redelivers the
batch, which the writer counts once; a RabbitMQ restart keeps the queue and
its unacknowledged messages.

    python -m kefu.analytics.rabbitmq --url amqp://guest:guest@127.0.0.1:5672/ --queue kefu_analytics

Several Rasa workers publish into the same queue; one consumer (or several:
the writer's keys make a message applied twice harmless, but per-sender
order, which the fallback streak needs, holds only with one). `make prod`
runs one, on its own exchange and queue (KEFU_RABBITMQ_EXCHANGE,
KEFU_RABBITMQ_QUEUE, as in deploy/endpoints.yml), so that another Kefu on
the same RabbitMQ does not receive its events.

The consumer makes its connection again itself, not through aio-pika's
robust connection, which can stop trying for good (aio-pika 8.2.3; its
issue tracker lists several ways) while the process runs on: in one CI
run of the fault test (RabbitMQ stopped for 10 s under load) not one
event published after the stop reached analytics (559 of 1,649), every
turn answered, and it did not happen again in local runs. Here any failure
(RabbitMQ gone, a step past its deadline, the database refusing a batch)
closes the connection, which gives the messages taken and not acknowledged
back to the queue (a refused batch used to stay taken until the
connection closed), and a new plain connection is made every
RECONNECT_SECONDS until one works. One error line per outage, one line
when it consumes again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from typing import Any

import aio_pika
from sqlalchemy.engine import Engine

from kefu.analytics import store
from kefu.analytics.writer import AnalyticsWriter
from kefu.db.engine import make_engine

logger = logging.getLogger(__name__)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_QUEUE = "kefu_analytics"
EXCHANGE = "rasa-exchange"  # rasa.core.brokers.pika.RABBITMQ_EXCHANGE
BATCH_SIZE = 200
# Seconds between attempts to connect again after a failure.
RECONNECT_SECONDS = 2.0
# Seconds a connection attempt, with its declarations, may take (a RabbitMQ
# still starting can accept the socket and answer nothing).
CONNECT_DEADLINE_SECONDS = 15.0
# Seconds one batch may take: its gets, the database write, the acknowledgements.
BATCH_DEADLINE_SECONDS = 60.0


def events_in_message(body: bytes) -> list[dict[str, Any]]:
    """The events of one message on Kefu's queue: KefuPikaEventBroker sends a
    JSON list of events, Rasa's own broker (and `rasa export`) one event."""
    payload = json.loads(body)
    if isinstance(payload, list):
        return [event for event in payload if isinstance(event, dict)]
    if isinstance(payload, dict):
        return [payload]
    raise ValueError(f"not a Rasa event: {type(payload).__name__}")


class RabbitConsumer:
    def __init__(
        self,
        engine: Engine,
        *,
        url: str = DEFAULT_URL,
        queue: str = DEFAULT_QUEUE,
        exchange: str = EXCHANGE,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.engine = engine
        self.url, self.queue_name, self.exchange_name = url, queue, exchange
        self.batch_size = batch_size
        self._connection: Any = None
        self._queue: Any = None
        store.ensure_tables(engine)

    async def connect(self) -> None:
        await asyncio.wait_for(self._connect(), CONNECT_DEADLINE_SECONDS)

    async def _connect(self) -> None:
        await self.close()
        self._connection = await aio_pika.connect(self.url, timeout=CONNECT_DEADLINE_SECONDS)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.batch_size)
        # Declared as Rasa's broker declares them, so either may start first.
        exchange = await channel.declare_exchange(self.exchange_name, type=aio_pika.ExchangeType.FANOUT)
        self._queue = await channel.declare_queue(self.queue_name, durable=True)
        await self._queue.bind(exchange, "")

    async def close(self) -> None:
        connection, self._connection, self._queue = self._connection, None, None
        if connection is not None and not connection.is_closed:
            try:
                await asyncio.wait_for(connection.close(), CONNECT_DEADLINE_SECONDS)
            except Exception as exc:  # noqa: BLE001 - a connection already gone is closed enough
                logger.debug("analytics RabbitMQ consumer: closing: %s", exc)

    async def consume_batch(self) -> int:
        """Take up to batch_size waiting messages, apply, commit, acknowledge."""
        messages: list[Any] = []
        while len(messages) < self.batch_size:
            message = await self._queue.get(no_ack=False, fail=False, timeout=5)
            if message is None:
                break
            messages.append(message)
        if not messages:
            return 0
        events = []
        for message in messages:
            try:
                events.extend(events_in_message(message.body))
            except ValueError as exc:
                logger.warning("analytics: a RabbitMQ message is not Rasa events (%s); dropped", exc)
        await asyncio.to_thread(self._apply, events)
        await self._acknowledge(messages)
        return len(messages)

    def _apply(self, events: list[dict[str, Any]]) -> None:
        with self.engine.begin() as connection:
            AnalyticsWriter(connection).write(events)

    async def _acknowledge(self, messages: list[Any]) -> None:
        for message in messages:
            await message.ack()

    async def drain(self) -> int:
        total = 0
        while read := await self.consume_batch():
            total += read
        return total

    async def run(self, idle_seconds: float = 1.0) -> None:
        """Consume until cancelled, connecting again after any failure."""
        failing_since: float | None = None
        try:
            while True:
                try:
                    if self._connection is None or self._connection.is_closed:
                        await self.connect()
                    read = await asyncio.wait_for(self.consume_batch(), BATCH_DEADLINE_SECONDS)
                except Exception as exc:  # noqa: BLE001 - unacknowledged messages come back on the next connection
                    if failing_since is None:
                        failing_since = time.monotonic()
                        logger.error(
                            "analytics RabbitMQ consumer: %s: %s; connecting again every %g s",
                            type(exc).__name__,
                            exc,
                            RECONNECT_SECONDS,
                        )
                    await self.close()
                    await asyncio.sleep(RECONNECT_SECONDS)
                    continue
                if failing_since is not None:
                    logger.info(
                        "analytics RabbitMQ consumer: consuming again after %.0f s", time.monotonic() - failing_since
                    )
                    failing_since = None
                if not read:
                    await asyncio.sleep(idle_seconds)
        finally:
            await self.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kefu.analytics.rabbitmq")
    parser.add_argument("--url", default=os.environ.get("KEFU_RABBITMQ_URL", DEFAULT_URL))
    parser.add_argument("--queue", default=os.environ.get("KEFU_RABBITMQ_QUEUE", DEFAULT_QUEUE))
    parser.add_argument("--exchange", default=os.environ.get("KEFU_RABBITMQ_EXCHANGE", EXCHANGE))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    consumer = RabbitConsumer(
        make_engine(os.environ.get("DATABASE_URL") or None), url=args.url, queue=args.queue, exchange=args.exchange
    )
    asyncio.run(consumer.run())


if __name__ == "__main__":
    main()
