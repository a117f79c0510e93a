"""How long the analytics report takes on a busy shop's month:
1,000,000 user turns (about 330,000 conversations) in the analytics tables
on SQLite or PostgreSQL, and how fast the writer ingests events. A store
given with --url is filled once and kept for the next runs.

    python -m bench.analytics_report [--turns 1000000] [--url sqlite:///var/bench/analytics.sqlite3]
    createdb -h 127.0.0.1 -U postgres kefu_bench_analytics
    python -m bench.analytics_report --url postgresql://postgres@127.0.0.1:5432/kefu_bench_analytics --skip-writer

The big store is filled with bulk inserts (the writer would take minutes
for a million turns); the writer's own speed is measured on the demo month.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, text

from kefu.analytics import store
from kefu.analytics.demo import generate_demo_month
from kefu.analytics.figures import CHINA_OFFSET, Period, compute
from kefu.db.engine import ensure_schema, make_engine

INTENTS = [
    "product_price",
    "product_stock",
    "product_recommend",
    "track_shipment",
    "inform",
    "faq",
    "greet",
    "thank",
    "request_return",
    "human_handoff",
    "nlu_fallback",
    "affirm",
]
FIRST_DAY = date(2026, 11, 1)


def fill(engine, turns: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = datetime.combine(FIRST_DAY, datetime.min.time()) - CHINA_OFFSET
    conversation_rows, turn_rows, handoff_rows = [], [], []
    conversation_id, turn_id, made = 0, 0, 0
    with engine.begin() as db:
        while made < turns:
            conversation_id += 1
            sender = f"bench-{rng.randrange(200000)}"
            began = start + timedelta(seconds=rng.randrange(30 * 86400))
            count = min(rng.choice([1, 2, 3, 3, 4, 5]), turns - made)
            streak, two, fallbacks = 0, False, 0
            handed = rng.random() < 0.12
            for index in range(count):
                turn_id += 1
                intent = rng.choice(INTENTS)
                fallback = intent == "nlu_fallback"
                streak = streak + 1 if fallback else 0
                two = two or streak >= 2
                fallbacks += fallback
                turn_rows.append(
                    {
                        "id": turn_id,
                        "event_key": f"k{turn_id}",
                        "conversation_id": conversation_id,
                        "sender_id": sender,
                        "at": began + timedelta(seconds=20 * index),
                        "channel": "web" if rng.random() < 0.7 else "wechat",
                        "text": "某个问题" if not fallback else f"听不懂的话{rng.randrange(500)}",
                        "normalized_text": "某个问题" if not fallback else f"听不懂的话{rng.randrange(500)}",
                        "intent": intent,
                        "confidence": 0.9,
                        "is_fallback": fallback,
                        "products": "小米14" if intent == "product_price" else "",
                        "categories": "",
                        "response_seconds": rng.uniform(0.1, 1.5),
                        **store.china_time_columns(began + timedelta(seconds=20 * index)),
                    }
                )
            made += count
            conversation_rows.append(
                {
                    "id": conversation_id,
                    "sender_id": sender,
                    "started_at": began,
                    "last_event_at": began,
                    "channel": "web",
                    "customer_key": sender,
                    "user_turns": count,
                    "fallback_turns": fallbacks,
                    "fallback_streak": streak,
                    "two_fallbacks_in_row": two,
                    "handed_off": handed,
                    "local_day": store.china_time_columns(began)["local_day"],
                    "local_week": store.china_time_columns(began)["local_week"],
                }
            )
            if handed:
                handoff_rows.append(
                    {
                        "conversation_id": conversation_id,
                        "sender_id": sender,
                        "at": began,
                        "reason": rng.choice(["customer_request", "two_fallbacks", "complaint"]),
                    }
                )
            if len(turn_rows) >= 20000:
                db.execute(insert(store.user_turns), turn_rows)
                db.execute(insert(store.conversations), conversation_rows)
                if handoff_rows:
                    db.execute(insert(store.handoffs), handoff_rows)
                turn_rows, conversation_rows, handoff_rows = [], [], []
        for table, rows in (
            (store.user_turns, turn_rows),
            (store.conversations, conversation_rows),
            (store.handoffs, handoff_rows),
        ):
            if rows:
                db.execute(insert(table), rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics_report")
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--url", default=None, help="default: a new SQLite file in a temporary directory")
    parser.add_argument("--skip-writer", action="store_true", help="only the report")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='kefu-bench-analytics-')) / 'shop.sqlite3'}"
    engine = make_engine(url)
    ensure_schema(engine)
    store.ensure_tables(engine)
    with engine.connect() as db:
        present = db.execute(select(func.count()).select_from(store.user_turns)).scalar() or 0
    if present < args.turns:
        began = time.perf_counter()
        fill(engine, args.turns - present)
        print(f"filled {args.turns - present:,} user turns in {time.perf_counter() - began:.1f} s")
    if engine.dialect.name == "postgresql":
        # What autovacuum does to a live store soon after: statistics, and the
        # visibility map that lets the covering indexes answer alone.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            for table in (store.user_turns, store.conversations, store.handoffs):
                db.execute(text(f"VACUUM ANALYZE {table.name}"))
    with engine.connect() as db:
        turns = db.execute(select(func.count()).select_from(store.user_turns)).scalar()
        conversations = db.execute(select(func.count()).select_from(store.conversations)).scalar()
    print(f"analytics store: {turns:,} user turns, {conversations:,} conversations ({engine.dialect.name})")
    for by in ("day", "week"):
        # The first run after filling reads the file from disk; then the page cache helps.
        seconds = []
        for _ in range(3):
            began = time.perf_counter()
            figures = compute(engine, Period(FIRST_DAY, FIRST_DAY + timedelta(days=29), by=by))
            seconds.append(time.perf_counter() - began)
        print(
            f"report for 30 days by {by}: {' / '.join(f'{s:.2f}' for s in seconds)} s (three runs; "
            f"{figures['totals']['user_messages']:,} user turns in range)"
        )
    if args.skip_writer:
        return
    demo = make_engine(f"sqlite:///{Path(tempfile.mkdtemp(prefix='kefu-bench-demo-')) / 'shop.sqlite3'}")
    ensure_schema(demo)
    began = time.perf_counter()
    summary = generate_demo_month(demo, today=date(2026, 11, 28))
    writer_seconds = time.perf_counter() - began
    with demo.connect() as db:
        demo_turns = db.execute(select(func.count()).select_from(store.user_turns)).scalar()
    rate = demo_turns / writer_seconds
    print(f"writer: {summary} in {writer_seconds:.2f} s ({rate:,.0f} user turns/s with their events)")


if __name__ == "__main__":
    main()
