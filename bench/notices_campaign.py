"""A campaign to 100,000 opted-in customers (generated): how long it takes
to queue (the outbox rows written and the delivery jobs on Redis), and how
fast the worker then sends, to a recording fake of WeChat's customer-service
API (every customer is a WeChat follower who wrote an hour ago).

    python -m bench.notices_campaign [--customers 100000] [--send-seconds 20] [--threads 4]
    python -m bench.notices_campaign --chat [--rounds 3] [--worker-nice 0,10] [--customers 100000]

Needs the Redis of this machine (KEFU_TEST_REDIS_URL, default
redis://127.0.0.1:6379/0); uses a namespace of its own and a throw-away
SQLite shop. Sending is measured for --send-seconds, not to the end.

--chat: the issue's speed target. Rasa and the action server (the trained
model, as `make bench` runs them) on the same throw-away shop, then rounds
of the same chat load (5-turn conversations of bench.run, --concurrency at
a time), each round once without and once while the campaign is being
sent by a notice worker in a process of its own (4 threads, to the
recording fake; started for the phase, stopped after it; one phase per
--worker-nice level). Prints per-turn p50 and the CPU seconds per turn of
the Rasa and action-server processes in each phase, then each round's
ratio and their median: same process set, back to back, so the machine's
other load weighs on both alike."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_process(args: argparse.Namespace) -> None:
    """The notice worker of --chat, in a process of its own (as
    `python -m kefu.notices.worker` runs beside Rasa): sends the queued
    campaign to a recording fake until SIGTERM, then prints what it sent."""
    if args.worker_nice[0]:
        os.nice(args.worker_nice[0])
    from dramatiq.brokers.redis import RedisBroker

    engine = make_engine(args.worker_db)
    broker = RedisBroker(url=args.redis, namespace=args.worker_namespace)
    store = NoticeStore(engine)
    fake = RecordingWeChat()
    declare(broker, store, Deliverer(store, fake, None))
    worker = dramatiq.Worker(broker, worker_threads=args.threads)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker.start()
    print("worker started", flush=True)
    stop.wait()
    worker.stop(timeout=30_000)
    print(f"sent {fake.sent}", flush=True)


def chat_beside_campaign(args: argparse.Namespace, engine, url: str, namespace: str, campaign: int) -> None:
    from bench.run import OURS_TURNS, load
    from kefu.testing import newest_model, running_servers

    model = newest_model()
    if model is None:
        raise SystemExit("no trained model: make train (or KEFU_MODEL=path)")
    conversations = args.conversations

    def sent_so_far() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count(Notice.id)).where(Notice.campaign_id == campaign, Notice.status == "sent")
                ).scalar()
            )

    with running_servers(model, url) as servers:
        pids = {"rasa": servers.rasa_pid, "actions": servers.actions_pid}
        asyncio.run(load(servers.rasa_url, OURS_TURNS, args.concurrency, args.concurrency))  # warm-up
        phases = ["alone"] + [f"nice {n}" for n in args.worker_nice]
        results: dict[str, list[dict]] = {phase: [] for phase in phases}
        for round_no in range(1, args.rounds + 1):
            for phase in phases:
                worker = None
                if phase != "alone":
                    worker = subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "bench.notices_campaign",
                            "--worker-db",
                            url,
                            "--worker-namespace",
                            namespace,
                            "--threads",
                            str(args.threads),
                            "--redis",
                            args.redis,
                            "--worker-nice",
                            phase.split()[1],
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                        start_new_session=True,
                    )
                    assert worker.stdout is not None
                    worker.stdout.readline()  # "worker started"
                    time.sleep(2)  # sending at full rate before the chat starts
                before_sent = sent_so_far()
                cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
                worker_cpu = cpu_seconds(worker.pid) if worker else 0.0
                figures = asyncio.run(load(servers.rasa_url, OURS_TURNS, args.concurrency, conversations))
                turns = figures["turns"]
                figures.update({f"{n}_cpu_ms": (cpu_seconds(p) - cpu[n]) * 1000 / turns for n, p in pids.items()})
                sent = sent_so_far() - before_sent
                line = (
                    f"round {round_no} {phase:8s}: {turns} turns, p50 {figures['p50']:.0f} ms, "
                    f"p95 {figures['p95']:.0f} ms, {figures['turns_per_s']:.1f} turns/s, CPU per turn: "
                    f"Rasa {figures['rasa_cpu_ms']:.1f} ms, actions {figures['actions_cpu_ms']:.1f} ms"
                )
                if worker is not None:
                    worker_cpu = cpu_seconds(worker.pid) - worker_cpu
                    os.killpg(worker.pid, signal.SIGTERM)
                    worker.communicate(timeout=60)
                    line += f"; campaign sent {sent} meanwhile (worker CPU {worker_cpu:.1f} s)"
                results[phase].append(figures)
                print(line, flush=True)
        alone = results["alone"]
        for phase in phases[1:]:
            busy = results[phase]
            # Each round's ratio (its phases back to back, under the same
            # background load), then their median: the machine's load drifts
            # between rounds far more than within one.
            p50_ratios = [b["p50"] / a["p50"] for a, b in zip(alone, busy)]
            cpu_ratios = [b["rasa_cpu_ms"] / a["rasa_cpu_ms"] for a, b in zip(alone, busy)]
            print(
                f"campaign worker {phase}: p50 ratio per round "
                f"{' '.join(f'{r:.2f}' for r in p50_ratios)}, median {statistics.median(p50_ratios):.3f} "
                f"(target <= 1.10); medians {statistics.median(a['p50'] for a in alone):.0f} ms alone, "
                f"{statistics.median(b['p50'] for b in busy):.0f} ms with the campaign; Rasa CPU per turn ratio "
                f"median {statistics.median(cpu_ratios):.3f} "
                f"({statistics.median(a['rasa_cpu_ms'] for a in alone):.1f} / "
                f"{statistics.median(b['rasa_cpu_ms'] for b in busy):.1f} ms)"
            )
        print(
            f"({args.threads} worker threads, chat concurrency {args.concurrency}, "
            f"{conversations} conversations a phase, SQLite)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.notices_campaign")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--send-seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--web", action="store_true", help="web customers (kept for their page) instead of WeChat")
    parser.add_argument("--chat", action="store_true", help="chat p50 without and while the campaign sends")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--conversations", type=int, default=40, help="5-turn conversations per phase")
    parser.add_argument(
        "--worker-nice",
        type=lambda v: [int(n) for n in v.split(",")],
        default=[0],
        help="niceness of the --chat notice worker; several (0,10) alternate in each round",
    )
    parser.add_argument("--worker-db", help=argparse.SUPPRESS)
    parser.add_argument("--worker-namespace", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_db:
        worker_process(args)
        return

    folder = Path(tempfile.mkdtemp(prefix="kefu-bench-notices-"))
    url = f"sqlite:///{folder / 'shop.sqlite3'}"
    engine = make_engine(url)
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

        if args.chat:
            chat_beside_campaign(args, engine, url, namespace, campaign)
            return
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
