"""Rasa's SQL event broker, pointed at the shop database.

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
