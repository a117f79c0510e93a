"""Where a turn's time goes: py-spy samples our Rasa server (and the action
server) while fresh 5-turn conversations, then one long conversation, are
driven over the REST channel; prints the share of samples spent in each part
of the turn and the busiest functions.

Usage: python -m bench.profile [--seconds 30] [--py-spy PATH]
py-spy is not a dependency of the project: `pip install py-spy` anywhere
(it is one static binary) and pass its path if it is not on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bench.run import OURS_TURNS, conversation
from kefu.db.engine import make_engine
from kefu.shop.demo import seed
from kefu.testing import newest_model, running_servers

# Parts of a turn, in order of precedence: a sample counts for the first part
# that matches any frame of its stack, so DIET under the NLU counts as "NLU: DIET".
PARTS = [
    ("NLU: DIET / TensorFlow", ("DIETClassifier", "diet_classifier", "tensorflow")),
    ("NLU: ResponseSelector", ("response_selector",)),
    ("NLU: jieba / featurizers", ("jieba", "count_vectors", "regex_featurizer", "tokenizer")),
    ("NLU: our components", ("kefu/nlu",)),
    ("policies (rules, memoization)", ("rasa/core/policies",)),
    ("tracker store (copy/serialise)", ("tracker_store", "trackers.py", "copy.py", "deepcopy")),
    ("action-server hop (HTTP client)", ("rasa/core/actions/action.py", "aiohttp/client", "rasa/utils/endpoints")),
    ("Sanic / asyncio / logging", ("sanic", "asyncio", "uvloop", "structlog", "logging")),
]
# Leaves where a thread waits (py-spy cannot always tell a C-level wait from work).
IDLE_LEAVES = ("serve (sanic/server/runners.py", "_worker (concurrent/futures/thread.py", "select (", "poll (")
ACTION_PARTS = [
    ("database (SQLAlchemy + driver)", ("sqlalchemy", "sqlite3", "psycopg")),
    ("our service layer", ("kefu/shop",)),
    ("our actions", ("actions/",)),
    ("rasa_sdk / Sanic", ("rasa_sdk", "sanic")),
]


def summarise(raw: Path, parts: list, title: str) -> None:
    """py-spy's raw format: one collapsed stack per line, `frame;frame;... count`.
    Idle threads are not sampled (no --idle) and idle event-loop leaves are
    dropped, so shares are of busy time."""
    by_part: Counter = Counter()
    by_leaf: Counter = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames[-1].startswith(IDLE_LEAVES):
            continue
        total += n
        by_leaf[frames[-1]] += n
        for name, needles in parts:
            if any(needle in frame for frame in reversed(frames) for needle in needles):
                by_part[name] += n
                break
        else:
            by_part["other"] += n
    print(f"\n{title}: {total} busy samples")
    for name, n in by_part.most_common():
        print(f"  {100 * n / max(total, 1):5.1f}%  {name}")
    print("  busiest functions (self time):")
    for frame, n in by_leaf.most_common(12):
        print(f"  {100 * n / max(total, 1):5.1f}%  {frame[:110]}")


async def drive(url: str, seconds: float, long_turns: int) -> tuple[int, int]:
    fresh = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await conversation(session, url, f"profile-{random.random()}", OURS_TURNS)
            fresh += 1
        await conversation(
            session, url, f"long-{random.random()}", [OURS_TURNS[i % len(OURS_TURNS)] for i in range(long_turns)]
        )
    return fresh, long_turns


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--long-turns", type=int, default=100)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    args = parser.parse_args()
    model = newest_model()
    if model is None:
        raise SystemExit("no model of ours: run `make train` first")
    database = Path(tempfile.mkdtemp()) / "shop.sqlite3"
    seed(make_engine(f"sqlite:///{database}"), orders=1000)
    out = Path(tempfile.mkdtemp(prefix="kefu-profile-"))
    with running_servers(model, f"sqlite:///{database}") as servers:
        duration = str(int(args.seconds + 60))
        spies = [
            subprocess.Popen(
                [
                    args.py_spy,
                    "record",
                    "--nonblocking",
                    "-r",
                    "200",
                    "-d",
                    duration,
                    "-f",
                    "raw",
                    "-o",
                    str(out / f"{name}.txt"),
                    "-p",
                    str(pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in (("rasa", servers.rasa_pid), ("actions", servers.actions_pid))
        ]
        time.sleep(2)
        started = time.monotonic()
        fresh, long_turns = asyncio.run(drive(servers.rasa_url, args.seconds, args.long_turns))
        print(
            f"drove {fresh} fresh 5-turn conversations and one of {long_turns} turns "
            f"in {time.monotonic() - started:.0f} s; model {model.name}"
        )
        for spy in spies:
            spy.send_signal(2)  # SIGINT: py-spy writes what it has
            spy.wait(60)
    summarise(out / "rasa.txt", PARTS, "Rasa server")
    summarise(out / "actions.txt", ACTION_PARTS, "action server")
    print(f"\nraw profiles (collapsed stacks, for flamegraph.pl or speedscope): {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
