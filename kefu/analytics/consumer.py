"""Read new events from the SQL event broker's table and write the analytics
rows (kefu.analytics.writer).

The read position (the highest broker row id applied) is stored in
`analytics_cursors` and committed in the same transaction as the rows those
events produced: a crash before the commit re-reads the batch (the writer is
idempotent), after it nothing is read twice. Several Rasa workers may publish
at once: on SQLite writes are serialised, so ids become visible in order; on
PostgreSQL a row committed late with a lower id than the mark would be
missed (not handled yet: see docs/analytics.md).

Run inside `python -m kefu.web` (a background task: one process, nothing
more for `make run` to start) or alone: `python -m kefu.analytics.consumer`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os

from sqlalchemy import select
from sqlalchemy.engine import Engine

from kefu.analytics import store
from kefu.analytics.writer import AnalyticsWriter
from kefu.db.engine import make_engine, utcnow

logger = logging.getLogger(__name__)

SQL_SOURCE = "sql_broker"
BATCH_SIZE = 500
POLL_SECONDS = 2.0


class SQLBrokerConsumer:
    def __init__(self, engine: Engine, *, batch_size: int = BATCH_SIZE) -> None:
        self.engine = engine
        self.batch_size = batch_size
        store.ensure_tables(engine)

    def position(self) -> int:
        with self.engine.connect() as connection:
            value = connection.execute(
                select(store.cursors.c.position).where(store.cursors.c.source == SQL_SOURCE)
            ).scalar()
        return int(value or 0)

    def consume_once(self) -> int:
        """Apply one batch of new broker rows; how many rows were read."""
        with self.engine.begin() as connection:
            mark = (
                connection.execute(
                    select(store.cursors.c.position).where(store.cursors.c.source == SQL_SOURCE)
                ).scalar()
                or 0
            )
            rows = connection.execute(
                select(store.broker_events.c.id, store.broker_events.c.data)
                .where(store.broker_events.c.id > mark)
                .order_by(store.broker_events.c.id)
                .limit(self.batch_size)
            ).all()
            if not rows:
                return 0
            events = []
            for row in rows:
                try:
                    events.append(json.loads(row.data))
                except (TypeError, ValueError):
                    logger.warning("analytics: broker row %s is not JSON; skipped", row.id)
            AnalyticsWriter(connection).write(events)
            new_mark = rows[-1].id
            moved = connection.execute(
                store.cursors.update()
                .where(store.cursors.c.source == SQL_SOURCE)
                .values(position=new_mark, updated_at=utcnow())
            )
            if moved.rowcount == 0:
                connection.execute(
                    store.cursors.insert().values(source=SQL_SOURCE, position=new_mark, updated_at=utcnow())
                )
        return len(rows)

    def drain(self) -> int:
        total = 0
        while read := self.consume_once():
            total += read
        return total

    async def run(self, poll_seconds: float = POLL_SECONDS) -> None:
        while True:
            try:
                await asyncio.to_thread(self.drain)
            except Exception as exc:  # noqa: BLE001 - keep consuming after a database hiccup
                logger.error("analytics consumer: %s", exc)
            await asyncio.sleep(poll_seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kefu.analytics.consumer")
    parser.add_argument("--once", action="store_true", help="apply what is there and stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    consumer = SQLBrokerConsumer(make_engine(os.environ.get("DATABASE_URL") or None))
    if args.once:
        print(f"{consumer.drain()} broker rows applied; position {consumer.position()}")
        return
    asyncio.run(consumer.run())


if __name__ == "__main__":
    main()
