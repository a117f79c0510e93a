"""Simulated customers for the production topology's fault tests and soak
(tests/test_production.py, `python -m bench.soak`). Not used by the bot.

Each customer talks over the REST channel, one conversation after another
(an order look-up with verification, or a return that files a ticket), and
retries a turn once when the request fails (as the chat page does). Every
message carries a unique `message_id` in its metadata (a retry the same),
which Rasa stores with the user event (kefu.rasa_resilience answers a
retry of a stored message from the store): afterwards each answered turn is looked for in the
conversation store (lost: answered but not stored; doubled: stored twice).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from kefu.shop.tokens import sign_session_token

APOLOGY = "系统暂时有点忙"


@dataclass
class Turn:
    sender: str
    turn_id: str
    text: str
    started: float  # seconds since the load began
    latency: float = float("nan")
    attempts: int = 0
    answered: bool = False
    apology: bool = False
    reply: str = ""
    errors: list[str] = field(default_factory=list)


@dataclass
class LoadResult:
    turns: list[Turn]
    seconds: float

    @property
    def answered(self) -> list[Turn]:
        return [t for t in self.turns if t.answered]

    def summary(self) -> dict:
        answered = self.answered
        latencies = sorted(t.latency for t in answered)

        def pct(q: float) -> float:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

        return {
            "attempted": len(self.turns),
            "answered": len(answered),
            "apologies": sum(t.apology for t in answered),
            "failed": len(self.turns) - len(answered),
            "retried": sum(t.attempts > 1 for t in self.turns),
            "p50_ms": pct(0.5) * 1000,
            "p99_ms": pct(0.99) * 1000,
            "max_ms": pct(1.0) * 1000,
            "turns_per_s": len(answered) / self.seconds if self.seconds else 0.0,
        }


def conversations(order_no: str, phone_tail: str, returnable_order: str, returnable_tail: str) -> list[list[str]]:
    return [
        ["你好", "小米14多少钱", "查订单", order_no, phone_tail],
        ["我要退货", returnable_order, returnable_tail, "不喜欢", "确认"],
    ]


async def run_load(
    url: str,
    scripts: list[list[str]],
    customers: int,
    seconds: float,
    *,
    turn_timeout: float = 60.0,
    events: list[tuple[float, Callable[[], None]]] | None = None,
    think_seconds: float = 0.0,
) -> LoadResult:
    """`customers` simulated customers for `seconds`; `events` are (at second,
    callable) run from a thread at those times (the faults)."""
    turns: list[Turn] = []
    began = time.monotonic()
    stop_at = began + seconds
    timeout = aiohttp.ClientTimeout(total=turn_timeout)

    async def customer(index: int) -> None:
        number = 0
        while time.monotonic() < stop_at:
            sender = f"load-{index}-{number}-{uuid.uuid4().hex[:6]}"
            script = scripts[(index + number) % len(scripts)]
            number += 1
            async with aiohttp.ClientSession(timeout=timeout) as session:
                for text in script:
                    if time.monotonic() >= stop_at:
                        return
                    turn = Turn(sender, uuid.uuid4().hex, text, time.monotonic() - began)
                    turns.append(turn)
                    await _one_turn(session, url, turn)
                    turn.latency = time.monotonic() - began - turn.started
                    if think_seconds:
                        await asyncio.sleep(random.uniform(0, think_seconds))

    async def faults() -> None:
        for at, action in sorted(events or [], key=lambda e: e[0]):
            await asyncio.sleep(max(0.0, began + at - time.monotonic()))
            await asyncio.to_thread(action)

    await asyncio.gather(faults(), *(customer(i) for i in range(customers)))
    return LoadResult(turns, time.monotonic() - began)


def token_secret() -> str:
    """The secret the topology signs chat sessions with (the REST channel
    takes only server-issued sessions): the simulated customers sign theirs
    with it, as kefu.web would have issued them."""
    return os.environ.get("KEFU_TOKEN_SECRET", "topology-secret")


async def _one_turn(session: aiohttp.ClientSession, url: str, turn: Turn) -> None:
    metadata = {"message_id": turn.turn_id, "session_token": sign_session_token(turn.sender, secret=token_secret())}
    payload = {"sender": turn.sender, "message": turn.text, "metadata": metadata}
    for _ in range(2):  # the chat page retries a failed request once
        turn.attempts += 1
        try:
            async with session.post(f"{url}/webhooks/rest/webhook", json=payload) as response:
                body = await response.read()
                if response.status == 200:
                    messages = json.loads(body or b"[]")
                    turn.reply = "\n".join(m.get("text", "") for m in messages)
                    turn.answered = bool(messages)
                    turn.apology = APOLOGY in turn.reply
                    if turn.answered:
                        return
                    turn.errors.append("200 with no answer")
                else:
                    turn.errors.append(f"HTTP {response.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            turn.errors.append(type(exc).__name__)
        await asyncio.sleep(0.5)


def stored_turn_ids(redis_client, senders: set[str], key_prefix: str = "kefu:tracker:") -> dict[str, int]:
    """turn_id -> how many user events carry it, in the Redis conversation store."""
    counts: dict[str, int] = {}
    for sender in senders:
        for text in redis_client.lrange(f"{key_prefix}events:{sender}", 0, -1):
            event = json.loads(text)
            if event.get("event") == "user":
                turn_id = (event.get("metadata") or {}).get("message_id")
                if turn_id:
                    counts[turn_id] = counts.get(turn_id, 0) + 1
    return counts


def user_events_by_sender(redis_client, senders: set[str], key_prefix: str = "kefu:tracker:") -> dict[str, int]:
    """sender -> user events in the Redis conversation store (what the event
    broker must have delivered to analytics, one row each)."""
    counts = {}
    for sender in senders:
        texts = redis_client.lrange(f"{key_prefix}events:{sender}", 0, -1)
        counts[sender] = sum(json.loads(text).get("event") == "user" for text in texts)
    return counts


def analytics_turns_by_sender(database_url: str, senders: set[str]) -> dict[str, int]:
    """sender -> rows in analytics_user_turns (written by the RabbitMQ consumer)."""
    from sqlalchemy import create_engine, func, select

    from kefu.analytics.store import user_turns

    engine = create_engine(database_url, future=True)
    counts = dict.fromkeys(senders, 0)
    try:
        with engine.connect() as conn:
            ordered = sorted(senders)
            for start in range(0, len(ordered), 500):
                rows = conn.execute(
                    select(user_turns.c.sender_id, func.count())
                    .where(user_turns.c.sender_id.in_(ordered[start : start + 500]))
                    .group_by(user_turns.c.sender_id)
                )
                counts.update({sender: count for sender, count in rows})
    finally:
        engine.dispose()
    return counts


def stored_message_id(turn_id: str) -> str:
    """A turn id as the conversation store keeps it: about one random hex id
    in 6,400 contains a run of digits that reads as a card or ID number, and
    is stored masked like any other metadata."""
    from kefu.shop.privacy import mask_sensitive

    return mask_sensitive(turn_id)


def lost_and_doubled(result: LoadResult, stored: dict[str, int]) -> tuple[int, int]:
    """Turns answered (not with the apology) but missing from the store;
    turns stored more than once. A turn answered with the apology because
    the store itself was down is not stored, and the customer was told so."""
    lost = sum(1 for t in result.answered if not t.apology and stored.get(stored_message_id(t.turn_id), 0) == 0)
    doubled = sum(1 for count in stored.values() if count > 1)
    return lost, doubled


# -- the production topology, started by scripts/prod.sh -------------------


RABBITMQ_URL = os.environ.get("KEFU_PROD_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")


def rabbitmq_problem(url: str = RABBITMQ_URL) -> str | None:
    """Why RabbitMQ cannot be used at `url`, or None when it answers."""
    import aio_pika

    async def probe() -> None:
        connection = await aio_pika.connect(url, timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # noqa: BLE001 - any failure is the reason
        return f"RabbitMQ not reachable at {url.split('@')[-1]}: {type(exc).__name__}: {exc}"
    return None


def delete_rabbitmq_route(url: str, exchange: str, queue: str) -> None:
    """Delete a topology's own exchange and durable queue (tests, benchmarks)."""
    import aio_pika

    async def delete() -> None:
        connection = await aio_pika.connect(url, timeout=10)
        try:
            channel = await connection.channel()
            await channel.queue_delete(queue)
            await channel.exchange_delete(exchange)
        finally:
            await connection.close()

    asyncio.run(delete())


@dataclass
class Topology:
    workdir: Path
    url: str
    redis_port: int
    database_url: str
    env: dict
    process: subprocess.Popen

    def pid(self, name: str) -> int:
        """The pid of a supervised server: rasa-1, actions-2, web, analytics, nginx."""
        return int((self.workdir / "run" / f"{name}.pid").read_text())

    def redis(self):
        import redis

        return redis.StrictRedis(host="127.0.0.1", port=self.redis_port, db=0, decode_responses=True)

    def server_urls(self) -> list[str]:
        rasa = [f"http://127.0.0.1:{p}/" for p in self.env["KEFU_PROD_RASA_PORTS"].split()]
        actions = [f"http://127.0.0.1:{p}/health" for p in self.env["KEFU_PROD_ACTION_PORTS"].split()]
        return rasa + actions

    def healthy(self, seconds: float = 240) -> None:
        """Waits until every replica and action server answers directly."""
        import urllib.request

        deadline = time.monotonic() + seconds
        for url in self.server_urls():
            while True:
                try:
                    urllib.request.urlopen(url, timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{url} not back within {seconds} s") from None
                    time.sleep(1)


def create_postgres_database(admin_url: str, name: str) -> str:
    from sqlalchemy import create_engine

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", future=True, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", future=True, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@contextmanager
def running_topology(
    model: Path,
    database_url: str,
    workdir: Path,
    *,
    replicas: int = 2,
    action_servers: int = 2,
    ready_seconds: float = 400,
):
    """scripts/prod.sh on free ports, a project-owned Redis, `database_url`,
    and an exchange and queue of its own on the RabbitMQ at RABBITMQ_URL
    (deleted afterwards); stopped with SIGINT (Ctrl-C) at the end."""
    import signal

    from kefu.testing import ROOT, free_port

    route = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "KEFU_PROD_DIR": str(workdir),
        "KEFU_PROD_PORT": str(free_port()),
        "KEFU_PROD_RASA_PORTS": " ".join(str(free_port()) for _ in range(replicas)),
        "KEFU_PROD_ACTION_PORTS": " ".join(str(free_port()) for _ in range(action_servers)),
        "KEFU_PROD_ACTIONS_LB_PORT": str(free_port()),
        "KEFU_PROD_WEB_PORT": str(free_port()),
        "KEFU_PROD_REDIS_PORT": str(free_port()),
        "KEFU_PROD_RABBITMQ": RABBITMQ_URL,
        "KEFU_PROD_RABBITMQ_EXCHANGE": f"kefu-topology-{route}",
        "KEFU_PROD_RABBITMQ_QUEUE": f"kefu_topology_{route}",
        "DATABASE_URL": database_url,
        "KEFU_MODEL": str(model),
        "KEFU_TOKEN_SECRET": token_secret(),
    }
    log_path = workdir / "prod.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "prod.sh")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    topology = Topology(
        workdir,
        f"http://127.0.0.1:{env['KEFU_PROD_PORT']}",
        int(env["KEFU_PROD_REDIS_PORT"]),
        database_url,
        env,
        process,
    )
    try:
        deadline = time.monotonic() + ready_seconds
        while not (workdir / "run" / "ready").exists():
            if process.poll() is not None:
                raise RuntimeError(f"prod.sh exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"prod.sh not ready in {ready_seconds} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield topology
    finally:
        # Ctrl-C, as an operator would: prod.sh stops everything it started.
        # A process started in the background of a non-interactive shell
        # inherits SIGINT ignored, and bash cannot trap an ignored signal
        # (the soak once left every server running): then SIGTERM, which
        # prod.sh traps the same way. SIGKILL last: its servers run in
        # sessions of their own and would be left behind.
        for stop, seconds in ((signal.SIGINT, 30), (signal.SIGTERM, 90)):
            if process.poll() is not None:
                break
            process.send_signal(stop)
            try:
                process.wait(seconds)
            except subprocess.TimeoutExpired:
                continue
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        try:
            delete_rabbitmq_route(RABBITMQ_URL, env["KEFU_PROD_RABBITMQ_EXCHANGE"], env["KEFU_PROD_RABBITMQ_QUEUE"])
        except Exception as exc:  # noqa: BLE001 - a leftover queue is reported, not fatal
            print(f"could not delete RabbitMQ queue {env['KEFU_PROD_RABBITMQ_QUEUE']}: {exc}")
