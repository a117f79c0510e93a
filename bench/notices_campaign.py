"""A campaign to 100,000 opted-in customers (generated): how long it takes
to queue (the outbox rows written and the delivery jobs on Redis), and how
fast the worker then sends, to a recording fake of WeChat's customer-service
API (every customer is a WeChat follower who wrote an hour ago).

    python -m bench.notices_campaign [--customers 100000] [--send-seconds 20] [--threads 4]

Needs the Redis of this machine (KEFU_TEST_REDIS_URL, default
redis://127.0.0.1:6379/0); uses a namespace of its own and a throw-away
SQLite shop. Sending is measured for --send-seconds, not to the end."""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import dramatiq
import redis
from sqlalchemy import func, insert, select, text

from kefu.db.engine import make_engine, utcnow
from kefu.db.models import Customer, Notice, NoticeConsent, WeChatContact
from kefu.notices.delivery import Deliverer
from kefu.notices.queue import declare
from kefu.notices.store import Audience, NoticeStore
from kefu.shop.demo import seed


class RecordingWeChat:
    def __init__(self) -> None:
        self.sent = 0
        self._lock = threading.Lock()

    def send_text(self, openid: str, text: str) -> None:
        with self._lock:
            self.sent += 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.notices_campaign")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--send-seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--web", action="store_true", help="web customers (kept for their page) instead of WeChat")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="kefu-bench-notices-"))
    engine = make_engine(f"sqlite:///{folder / 'shop.sqlite3'}")
    seed(engine, orders=300)
    now = utcnow()
    started = time.perf_counter()
    with engine.begin() as conn:
        first = conn.execute(select(func.max(Customer.id))).scalar() + 1
        ids = range(first, first + args.customers)
        for start in range(0, len(ids), 20_000):
            chunk = ids[start : start + 20_000]
            conn.execute(
                insert(Customer),
                [
                    {
                        "id": i,
                        "name": f"顾客{i}",
                        "phone": f"13{i:09d}",
                        "wechat_openid": None if args.web else f"oBench{i:010d}",
                        "created_at": now,
                    }
                    for i in chunk
                ],
            )
            conn.execute(
                insert(NoticeConsent),
                [
                    {"customer_id": i, "kind": "marketing", "granted": True, "channel": "web", "changed_at": now}
                    for i in chunk
                ],
            )
            conn.execute(
                insert(WeChatContact),
                [{"openid": f"oBench{i:010d}", "last_message_at": now - timedelta(hours=1)} for i in chunk],
            )
    kind = "web" if args.web else "WeChat"
    print(f"generated {args.customers} opted-in {kind} customers in {time.perf_counter() - started:.1f} s")

    namespace = f"kefu-bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(args.redis)
    client.ping()
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=args.redis, namespace=namespace)
    store = NoticeStore(engine)
    fake = RecordingWeChat()
    jobs = declare(broker, store, Deliverer(store, fake, None))
    audience = Audience()
    expected = store.audience_count(audience)
    campaign = store.create_campaign(store.promotions()[0]["id"], audience, "会员日满减", utcnow(), staff_id=None)
    try:
        started = time.perf_counter()
        jobs.expand_campaign.fn(campaign)  # what the worker's job does, timed here
        queued_in = time.perf_counter() - started
        with engine.connect() as conn:
            written = conn.execute(select(func.count(Notice.id)).where(Notice.campaign_id == campaign)).scalar()
        on_redis = broker.client.llen(f"{namespace}:kefu-notices")
        print(
            f"queued: {written} outbox rows for an audience of {expected}, {on_redis} delivery jobs on Redis, "
            f"in {queued_in:.1f} s (target < 30 s)"
        )

        worker = dramatiq.Worker(broker, worker_threads=args.threads)
        worker.start()
        started = time.perf_counter()
        time.sleep(args.send_seconds)
        with engine.connect() as conn:
            kept = conn.execute(
                select(func.count(Notice.id)).where(Notice.campaign_id == campaign, Notice.status == "sent")
            ).scalar()
        sent, elapsed = (kept if args.web else fake.sent), time.perf_counter() - started
        worker.stop(timeout=60_000)  # lets the batches in hand finish (counted below, not in the rate)
        rate = sent / elapsed
        print(
            f"sent: {sent} {'kept for the page' if args.web else 'to the recording fake'} in {elapsed:.1f} s "
            f"= {rate:.0f} notices/s "
            f"({args.threads} threads, SQLite); the whole campaign at this rate: {expected / max(rate, 1) / 60:.0f} min"
        )
        with engine.connect() as conn:
            statuses = dict(conn.execute(text("SELECT status, COUNT(*) FROM notices GROUP BY status")).all())
        print(f"outbox after the measurement: {statuses}")
    finally:
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)


if __name__ == "__main__":
    main()
