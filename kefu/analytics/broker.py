"""Rasa's event brokers as Kefu uses them: the SQL one pointed at the shop
database (the default), and the pika one (RabbitMQ, the production
topology) without its ways of losing events (KefuPikaEventBroker, at the end).

`endpoints.yml` names it (`event_broker: type: kefu.analytics.broker.KefuSQLEventBroker`).
It is Rasa's own SQLEventBroker with two differences:

- its table is `analytics_broker_events`, not `events`: Rasa's SQL tracker
  store also keeps a table called `events` (other columns), and the stock
  broker pointed at a database holding that store would write rows the
  store later reads back as conversation events;
- the database is DATABASE_URL (default: the embedded SQLite file), opened
  through kefu.db.engine (WAL, busy timeout, pooled), so a publish costs an
  insert on an open connection, and the consumer commits its rows and its
  read position in the same database.

A failing publish is logged, never raised: analytics must not cost a
customer an answer. Inside Rasa's event loop the events of a turn (Rasa
publishes them one by one, in one go) are written together, in one
transaction, by one writer thread, after the turn's code has run: the turn
does not wait for the database. Events still in memory are lost if the
process dies in those milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
from asyncio import AbstractEventLoop
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aio_pika
import aiormq
from rasa.core.brokers.pika import PikaEventBroker
from rasa.core.brokers.sql import SQLEventBroker
from rasa.utils.endpoints import EndpointConfig
from sqlalchemy import insert

from kefu.analytics import store
from kefu.db.engine import make_engine

logger = logging.getLogger(__name__)


class KefuSQLEventBroker(SQLEventBroker):
    def __init__(self, url: str | None = None, **_ignored: Any) -> None:  # noqa: D107 - see the module
        self.engine = make_engine(url or None)
        self._pending: list[dict[str, Any]] = []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kefu-event-broker")
        self._tables_ready = False
        self._ensure_tables()

    def _ensure_tables(self) -> bool:
        # A database down when Rasa starts must not stop Rasa: the table is
        # made on the first publish that reaches the database.
        if not self._tables_ready:
            try:
                store.ensure_tables(self.engine)
                self._tables_ready = True
            except Exception as exc:  # noqa: BLE001 - logged; analytics waits for the database
                logger.error("analytics: event broker table not ready: %s", exc)
        return self._tables_ready

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: EndpointConfig, event_loop: AbstractEventLoop | None = None
    ) -> KefuSQLEventBroker:
        return cls(**broker_config.kwargs)

    def publish(self, event: dict[str, Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write([event])
            return
        self._pending.append(event)
        if len(self._pending) == 1:
            loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        # Runs on the event loop only (call_soon, close): no race on _pending.
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        # One thread: batches are written in the order they were published.
        self._writer.submit(self._write, batch)

    def _write(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        if not self._ensure_tables():
            logger.error("analytics: %d events not published: no database", len(events))
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(store.broker_events),
                    [
                        {"sender_id": event.get("sender_id"), "data": json.dumps(event, ensure_ascii=False)}
                        for event in events
                    ],
                )
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            logger.error("analytics: %d events not published: %s", len(events), exc)

    async def close(self) -> None:
        """Write what is pending and wait for it (Rasa's shutdown, tests)."""
        self._hand_over()
        await asyncio.wrap_future(self._writer.submit(lambda: None))


# Seconds between attempts to send again the events a failed publish kept.
PIKA_RETRY_SECONDS = 2.0
# Seconds a publish may take, confirmation included, before its events are
# kept and sent again (a confirmation that comes late makes duplicates, which
# the analytics writer counts once).
PIKA_PUBLISH_DEADLINE_SECONDS = 60.0
# Events are gathered this long and sent together (see the class).
PIKA_FLUSH_SECONDS = 0.5
# At most this many events in one RabbitMQ message (about 1 MB at most).
PIKA_EVENTS_PER_MESSAGE = 200
# Seconds events may stay kept before the connection is replaced by a new one
# (see the class), and the deadline of making that new one.
PIKA_RECONNECT_SECONDS = 30.0


class KefuPikaEventBroker(PikaEventBroker):
    """Rasa's pika broker (RabbitMQ) that keeps up with a busy replica and
    without Rasa's ways of losing events; `deploy/endpoints.yml` names it for
    the production topology.

    - **A few messages a second, not one per event.** Rasa publishes a
      turn's 5-10 events one by one, each its own message and its own task
      waiting for its confirmation. aiormq reads each confirmation frame in
      several passes of the event loop (`wait_for` around every socket
      read), and a replica's loop, busy with the NLU, makes few passes: the
      confirmations fell behind, the tasks holding their events piled up
      (the soak: one replica +61 % RSS, p99 from 2.2 to 5.3 s), and
      publishes passed the deadline and were sent again. Here events are
      gathered for PIKA_FLUSH_SECONDS and sent as one message, a JSON list
      (`python -m bench.broker_throughput` compares both ways without
      Rasa); the analytics consumer takes both forms
      (`kefu.analytics.rabbitmq.events_in_message`). Events with headers
      (`rasa export`) go one per message, as Rasa sends them.
    - A publish still waiting for its confirmation when the connection
      closes ends with CancelledError (aiormq), which Rasa does not catch:
      the events were neither sent nor kept. Here they are kept.
    - A message RabbitMQ returns as unroutable is a failed publish here. After
      a RabbitMQ restart, Rasa's transient exchange and its binding are gone;
      aio-pika declares the exchange again before it binds the queue again,
      and a message published in between is returned. Rasa counts it as sent
      (publisher confirms acknowledge a returned message too).
    - Rasa keeps a failed event in memory but sends it again only when the
      connection is made again: one that fails after that waited for the
      next outage. Here kept events are sent again every PIKA_RETRY_SECONDS,
      and as soon as a publish succeeds.
    - A publish whose frames were queued on a channel when RabbitMQ went
      away waits forever (aiormq resolves neither the frames' drain future
      nor, under its lock, the publishes queued behind it): those events
      were neither sent nor kept (fault test 5 lost 15 of 193 user events
      that way, traced on 2026-11-28). Here messages are published without
      that wait (`_send`), and every publish has a backstop deadline
      (PIKA_PUBLISH_DEADLINE_SECONDS); a publish past it is kept.

    - aio-pika's robust connection, which Rasa's broker relies on to come
      back after RabbitMQ does, can stop trying for good (aio-pika 8.2.3; its
      issue tracker lists several ways), and the replica then keeps every
      event in memory for the rest of its life (in one CI run of the fault
      test, RabbitMQ stopped for 10 s, no event published after the stop
      reached analytics; the consumer or the replicas had not come back).
      Here, when events have stayed kept for
      PIKA_RECONNECT_SECONDS, a new connection is made as Rasa makes it
      (`connect`) and the old one closed; the consumer does the same
      (`kefu.analytics.rabbitmq`).

    Events kept in memory are lost if the process dies before RabbitMQ is
    back, as are those of the last PIKA_FLUSH_SECONDS; their order relative
    to newer events is not kept. Written against Rasa 3.6.21's private parts
    (`publish` replaces its path to `_publish`; `_unpublished_events`,
    `_background_tasks`, `_exchange`, `_loop`; refused for another version).
    """

    # Rasa's attribute (an aio-pika robust connection), replaced by _replace_connection.
    _connection: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: D107 - see the class
        import rasa

        if rasa.__version__ != "3.6.21":
            raise RuntimeError(f"KefuPikaEventBroker is written for Rasa 3.6.21, not {rasa.__version__}")
        super().__init__(*args, **kwargs)
        self._retry: asyncio.TimerHandle | None = None
        self._pending: list[dict[str, Any]] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self.flush_seconds = PIKA_FLUSH_SECONDS
        self.publish_deadline_seconds = PIKA_PUBLISH_DEADLINE_SECONDS
        self.reconnect_seconds = PIKA_RECONNECT_SECONDS
        # When events were first kept in this outage; None while none are.
        self._kept_since: float | None = None
        self._reconnecting: asyncio.Task | None = None
        # Counted for bench/broker_throughput.py, not for any decision.
        self.events_confirmed = 0

    def publish(self, event: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        if headers:
            self._start(self._publish_events([event], headers))
            return
        self._pending.append(event)
        if self._flush_timer is None:
            self._flush_timer = self._loop.call_later(self.flush_seconds, self._flush)

    def _flush(self) -> None:
        # Runs on the event loop only (call_later, close): no race on _pending.
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        batch, self._pending = self._pending, []
        for start in range(0, len(batch), PIKA_EVENTS_PER_MESSAGE):
            self._start(self._publish_events(batch[start : start + PIKA_EVENTS_PER_MESSAGE]))

    def _start(self, publishing: Any) -> None:
        # A reference to the task, or it may be collected before it runs (as Rasa does).
        task = self._loop.create_task(publishing)
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)

    async def _publish_events(self, events: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
        if self._exchange is None:
            self._keep(events, "not connected")
            return
        # With headers, Rasa's own form: one event, not a list.
        message = self._message(events[0], headers) if headers else self._batch_message(events)
        try:
            confirmation = await asyncio.wait_for(self._send(message), self.publish_deadline_seconds)
        except asyncio.TimeoutError:
            self._keep(events, f"no confirmation within {self.publish_deadline_seconds:g} s")
            return
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - kept, sent again; never raised
            # CancelledError: aiormq ends the publishes still waiting for their
            # confirmation so when the connection closes (RabbitMQ stopping).
            self._keep(events, f"{type(exc).__name__}: {exc}")
            return
        # None: no publisher confirms asked for (Rasa's channel asks for them).
        if confirmation is not None and not isinstance(confirmation, aiormq.spec.Basic.Ack):
            self._keep(events, f"returned by RabbitMQ ({type(confirmation).__name__})")
            return
        self.events_confirmed += len(events)
        if self._kept_since is not None and not self._unpublished_events:
            self._kept_since = None
            logger.info("analytics: RabbitMQ takes events again; every kept event is sent")
        if self._unpublished_events:
            self._schedule_retry(0)

    def _batch_message(self, events: list[dict[str, Any]]) -> Any:
        # As Rasa's `_message`, with a list of events for a body.
        return aio_pika.Message(
            json.dumps(events).encode("utf-8"),
            app_id=self.rasa_environment,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )

    async def _send(self, message: Any) -> Any:
        """Publish on the exchange's current channel without waiting, under the
        channel's lock, for the frames to reach the socket (aio-pika's
        `Exchange.publish` does): that wait costs several event-loop turns per
        message, and a Rasa process whose loop also runs the NLU published
        fewer messages than its turns made (a soak's throughput fell from 27
        to 5 turns a second). The confirmation is still awaited."""
        channel = self._exchange.channel
        return await channel.basic_publish(
            message.body,
            exchange=self._exchange.name,
            routing_key="",
            properties=message.properties,
            mandatory=True,
            wait=False,
        )

    def _keep(self, events: list[dict[str, Any]], why: str) -> None:
        self._unpublished_events.extend(events)
        if self._kept_since is None:
            self._kept_since = self._loop.time()
            logger.error("analytics: events not published to RabbitMQ (%s): kept, sent again when it is back", why)
        self._schedule_retry(PIKA_RETRY_SECONDS)

    def _schedule_retry(self, delay: float) -> None:
        if self._retry is None:
            self._retry = self._loop.call_later(delay, self._send_kept)

    def _send_kept(self) -> None:
        self._retry = None
        kept_for = 0.0 if self._kept_since is None else self._loop.time() - self._kept_since
        if self._unpublished_events and kept_for >= self.reconnect_seconds and self._reconnecting is None:
            self._reconnecting = self._loop.create_task(self._replace_connection(kept_for))
            return
        if self._unpublished_events:
            # Every PIKA_RETRY_SECONDS while RabbitMQ is away: the outage's
            # first and last lines are the operator's (_keep, _publish_events).
            logger.debug(
                "analytics: sending %d kept events again (%d publishes in flight)",
                len(self._unpublished_events),
                len(self._background_tasks),
            )
            # Rasa's: each kept event through publish(), so they leave together.
            self._publish_unpublished_messages()

    async def _replace_connection(self, kept_for: float) -> None:
        old = self._connection
        logger.error(
            "analytics: %d events kept for %.0f s; making a new RabbitMQ connection",
            len(self._unpublished_events),
            kept_for,
        )
        try:
            await asyncio.wait_for(self.connect(), self.reconnect_seconds)
        except Exception as exc:  # noqa: BLE001 - tried again later; never raised
            if self._connection is not old:  # made, but its exchange was not declared in time
                await self._close_quietly(self._connection)
                self._connection = old
            logger.error("analytics: no new RabbitMQ connection (%s: %s); trying again later", type(exc).__name__, exc)
        else:
            await self._close_quietly(old)
        finally:
            self._reconnecting = None
            self._kept_since = self._loop.time()
            self._schedule_retry(0)

    async def _close_quietly(self, connection: Any) -> None:
        if connection is None:
            return
        try:
            await asyncio.wait_for(connection.close(), 5)
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - a connection already gone is closed enough
            logger.debug("analytics: closing a RabbitMQ connection: %s", exc)

    async def close(self) -> None:
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        self._flush()
        if self._background_tasks:
            await asyncio.wait(set(self._background_tasks), timeout=5)
        if self._retry is not None:  # after the wait: a publish that failed in it schedules one
            self._retry.cancel()
            self._retry = None
        if self._unpublished_events:
            logger.error("analytics: %d events kept for RabbitMQ are lost at shutdown", len(self._unpublished_events))
        await super().close()
