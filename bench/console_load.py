"""What the agent console costs the chatting customers: the same customers
(bench.run's five turns: greeting, product look-up, order form, order
number, phone tail) with the console idle, and with it in use, side by side
in one run on the same servers.

"In use" means: `--agents` agents signed in, each with the console's event
stream open and reloading the queue (and the conversation it holds) on
every event as the page does; `--handoffs` hand-offs open in the shop
database (customers who said 转人工; the console's watcher fetches each one's
tracker from Rasa every second), their chat pages listening to the pushed-
message stream; one of them claimed, its agent replying every second
(appended to the tracker through Rasa's API, pushed to the page). "Idle":
no console page open and those hand-offs closed. Blocks alternate
(idle, in use, idle, in use, ...) so the machine's load falls on both alike;
compare the ratios, not figures across runs.

    python -m bench.console_load [--rounds 3] [--agents 5] [--handoffs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from sqlalchemy import update

from bench.run import OURS_TURNS, cpu_seconds, load
from kefu.console.store import ConsoleStore
from kefu.db.engine import make_engine, session_scope
from kefu.db.models import HandoffRequest
from kefu.shop.demo import seed
from kefu.shop.tokens import sign_session_token
from kefu.testing import newest_model, running_servers, running_web

os.environ.setdefault("KEFU_TOKEN_SECRET", secrets.token_hex(16))
PASSWORD = "bench-console-password"


class Console:
    """One agent's console page: signed in, its event stream open, reloading as the page does."""

    def __init__(self, web: str, name: str, holds: int | None = None):
        self.web, self.name, self.holds = web, name, holds
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.reloads = 0

    async def sign_in(self) -> None:
        async with self.http.get(f"{self.web}/console/login") as res:
            found = re.search(r'name="csrf" value="([^"]+)"', await res.text())
            assert found, "no login form"
        form = {"name": self.name, "password": PASSWORD, "csrf": found.group(1)}
        async with self.http.post(f"{self.web}/console/login", data=form, allow_redirects=False) as res:
            assert res.status == 302, res.status
        async with self.http.get(f"{self.web}/console/api/me") as res:
            self.csrf = (await res.json())["csrf"]

    async def listen(self) -> None:
        async with self.http.get(f"{self.web}/console/api/events", timeout=aiohttp.ClientTimeout(total=None)) as res:
            async for line in res.content:
                if not line.startswith(b"data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("type") == "queue":
                    await self._get("/console/api/queue")
                elif event.get("type") == "messages" and self.holds is not None:
                    await self._get(f"/console/api/handoffs/{self.holds}")

    async def _get(self, path: str) -> None:
        async with self.http.get(f"{self.web}{path}") as res:
            await res.read()
        self.reloads += 1

    async def post(self, path: str, payload: dict | None = None) -> int:
        headers = {"X-CSRF-Token": self.csrf}
        async with self.http.post(f"{self.web}{path}", json=payload, headers=headers) as res:
            await res.read()
            return res.status

    async def close(self) -> None:
        await self.http.close()


async def chat_page(web: str, sender: str, received: list[int]) -> None:
    """A customer's chat page listening to the pushed-message stream."""
    params = {"sender": sender, "session_token": sign_session_token(sender)}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
        async with http.get(f"{web}/api/chat/events", params=params) as res:
            async for line in res.content:
                if line.startswith(b"data:"):
                    received.append(1)


async def claim(web: str, handoff_id: int) -> None:
    """bench0 takes one hand-off over (Rasa pauses that conversation)."""
    console = Console(web, "bench0")
    try:
        await console.sign_in()
        status = await console.post(f"/console/api/handoffs/{handoff_id}/claim")
        assert status == 200, status
    finally:
        await console.close()


def set_handoffs(engine, ids: list[int], claimed: int, *, open_: bool) -> None:
    with session_scope(engine) as s:
        s.execute(
            update(HandoffRequest)
            .where(HandoffRequest.id.in_([i for i in ids if i != claimed]))
            .values(status="waiting" if open_ else "closed")
        )
        s.execute(
            update(HandoffRequest).where(HandoffRequest.id == claimed).values(status="taken" if open_ else "closed")
        )


def web_pid(origin: str) -> int:
    """The pid of `python -m kefu.web` serving `origin` (kefu.testing.running_web does not say)."""
    port = origin.rsplit(":", 1)[1].encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            if b"kefu.web" in cmd and port in cmd:
                return int(proc.name)
    raise RuntimeError(f"no kefu.web process on port {port.decode()}")


class Meter:
    """CPU seconds our processes used during the measured blocks: our own
    work, which the other users of the machine do not change much (unlike
    latencies)."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids

    def snapshot(self) -> dict[str, float]:
        return {role: cpu_seconds(pid) for role, pid in self.pids.items()} | {"wall": time.monotonic()}

    async def measure(self, block) -> dict:
        before = self.snapshot()
        result = await block()
        after = self.snapshot()
        return {**result, "cpu": {role: after[role] - before[role] for role in before}}


async def in_use(web: str, agents: int, senders: list[str], claimed: int, block, meter: Meter) -> tuple[dict, dict]:
    """Run `block` (the chatting customers) with the console in use."""
    consoles = [Console(web, f"bench{i}", claimed if i == 0 else None) for i in range(agents)]
    for console in consoles:
        await console.sign_in()
    pushed: list[int] = []
    tasks = [asyncio.ensure_future(c.listen()) for c in consoles]
    tasks += [asyncio.ensure_future(chat_page(web, s, pushed)) for s in senders]
    stop = asyncio.Event()

    async def keep_replying() -> int:
        sent = 0
        while not stop.is_set():
            status = await consoles[0].post(f"/console/api/handoffs/{claimed}/reply", {"text": f"客服回复 {sent}"})
            assert status == 200, status
            sent += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        return sent

    replier = asyncio.ensure_future(keep_replying())
    await asyncio.sleep(2)  # streams open, the watcher has seen the open hand-offs
    try:
        result = await meter.measure(block)
    finally:
        stop.set()
        replies = await replier
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for console in consoles:
            await console.close()
    return result, {
        "agent_replies": replies,
        "pushed_to_pages": len(pushed),
        "console_reloads": sum(c.reloads for c in consoles),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console_load")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--handoffs", type=int, default=5)
    parser.add_argument("--conversations", type=int, default=8, help="chatting customers per block")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    model = newest_model()
    assert model is not None, "no trained model in models/ (make train)"
    workdir = Path(tempfile.mkdtemp(prefix="kefu-console-bench-"))
    url = f"sqlite:///{workdir / 'shop.sqlite3'}"
    engine = make_engine(url)
    seed(engine, orders=200)
    store = ConsoleStore(engine)
    for i in range(args.agents):
        store.add_staff(f"bench{i}", "agent", PASSWORD)
    # No "still waiting" message during the run: it would be one more turn in one block only.
    env = {"KEFU_SERVICE_HOURS": "0-24", "KEFU_HANDOFF_UPDATE_SECONDS": "86400"}
    with running_servers(model, url, extra_env=env) as servers:
        with running_web(url, servers.rasa_url, extra_env=env, log=workdir / "web.log") as web:
            # Customers who asked for a person: real hand-offs, made by the bot.
            senders = [f"web-benchhandoff{i:04d}" for i in range(args.handoffs)]
            for sender in senders:
                servers.say(sender, "你好")
                servers.say(sender, "转人工")
            ids = [h.id for h in store.open_handoffs() if h.conversation_id in senders]
            assert len(ids) == args.handoffs, f"{len(ids)} hand-offs made of {args.handoffs}"
            claimed = ids[0]
            asyncio.run(claim(web, claimed))
            asyncio.run(load(servers.rasa_url, OURS_TURNS, 1, 2))  # warm-up

            meter = Meter({"rasa": servers.rasa_pid, "actions": servers.actions_pid, "web": web_pid(web)})
            results: dict[str, dict[int, list[dict]]] = {"idle": {}, "in use": {}}
            extras: list[dict] = []
            started = time.monotonic()
            for round_ in range(args.rounds):
                for concurrency in args.concurrency:
                    conversations = max(args.conversations, 2 * concurrency)

                    def block(c=concurrency, n=conversations):
                        return load(servers.rasa_url, OURS_TURNS, c, n)

                    set_handoffs(engine, ids, claimed, open_=False)
                    time.sleep(1.5)  # the watcher drops them
                    results["idle"].setdefault(concurrency, []).append(asyncio.run(meter.measure(block)))
                    set_handoffs(engine, ids, claimed, open_=True)
                    measured, extra = asyncio.run(in_use(web, args.agents, senders, claimed, block, meter))
                    results["in use"].setdefault(concurrency, []).append(measured)
                    extras.append(extra)
                print(f"  round {round_ + 1}/{args.rounds} done ({time.monotonic() - started:.0f} s)", flush=True)

    print(
        f"\nconsole in use: {args.agents} agents signed in with the event stream open, {args.handoffs} open "
        f"hand-offs (their chat pages listening), one claimed with a reply every second; "
        f"{args.rounds} rounds, blocks alternating; model {model.name}"
    )
    for concurrency in args.concurrency:
        for phase in ("idle", "in use"):
            blocks = results[phase][concurrency]
            p50s = [b["p50"] for b in blocks]
            print(
                f"  concurrency {concurrency:2d}, console {phase:6s}: per-turn p50 "
                + " / ".join(f"{p:.1f}" for p in p50s)
                + f" ms (median {statistics.median(p50s):.1f}), p95 median "
                f"{statistics.median(b['p95'] for b in blocks):.1f} ms, "
                f"{statistics.median(b['turns_per_s'] for b in blocks):.1f} turns/s "
                f"({sum(b['turns'] for b in blocks)} turns)"
            )
        ratios = [
            busy["p50"] / idle["p50"]
            for idle, busy in zip(results["idle"][concurrency], results["in use"][concurrency])
        ]
        throughput = [
            busy["turns_per_s"] / idle["turns_per_s"]
            for idle, busy in zip(results["idle"][concurrency], results["in use"][concurrency])
        ]
        for phase in ("idle", "in use"):
            blocks = results[phase][concurrency]
            turns, wall = sum(b["turns"] for b in blocks), sum(b["cpu"]["wall"] for b in blocks)
            print(
                f"  concurrency {concurrency:2d}, console {phase:6s}: CPU per customer turn: "
                f"rasa {1000 * sum(b['cpu']['rasa'] for b in blocks) / turns:.1f} ms, "
                f"action server {1000 * sum(b['cpu']['actions'] for b in blocks) / turns:.1f} ms; "
                f"kefu.web {100 * sum(b['cpu']['web'] for b in blocks) / wall:.1f}% of a core"
            )
        print(
            f"  concurrency {concurrency:2d}: in use / idle p50 per round "
            + " ".join(f"{r:.2f}x" for r in ratios)
            + f" (median {statistics.median(ratios):.2f}x); throughput {statistics.median(throughput):.2f}x"
        )
    print(
        "  while in use: "
        f"{sum(e['agent_replies'] for e in extras)} agent replies, "
        f"{sum(e['pushed_to_pages'] for e in extras)} messages pushed to chat pages, "
        f"{sum(e['console_reloads'] for e in extras)} console reloads"
    )


if __name__ == "__main__":
    main()
