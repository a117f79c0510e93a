"""Memory of one Rasa process under a long load, minute by minute: is the
growth after the warm-up a leak or a bounded cache filling?

One action server and one Rasa process (`rasa run`, this checkout's newest
model) with the production stores: conversations in Redis
(kefu.tracker_store.MaskingRedisTrackerStore) and Redis's lock store, on
the Redis at --redis (loopback 6379 by default) in database --db under a key
prefix of this run's own, deleted afterwards; the rest of endpoints.yml as
it is (events to the SQL broker in the shop database: DATABASE_URL, else
var/shop.sqlite3). No nginx, no RabbitMQ (the production topology's soak
is `python -m bench.topology --soak 600`).
`--concurrency` simulated customers (kefu/loadtest.py: every conversation a
new sender id, no pause between messages) for a warm-up minute, then
`--minutes` one-minute rounds; after each, the RSS of both processes and,
with --probe, what the Rasa process holds (trackers alive, Python objects,
and with --tracemalloc the lines that allocated most since the warm-up).

Usage:
  python -m bench.memory_soak --probe               # 11 minutes, the default live-tracker bounds
  python -m bench.memory_soak --probe --live-trackers 1000 --live-seconds 1e9   # the old bound
  python -m bench.memory_soak --malloc-arena-max 2  # glibc malloc arenas, both servers
  python -m bench.memory_soak --trace-actions 1     # tracemalloc in the action server
  DATABASE_URL=postgresql://... python -m bench.memory_soak   # the shop (and events) in PostgreSQL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

from bench.topology import SCRIPTS, cpu_seconds, rss_mb
from kefu.loadtest import run_load
from kefu.testing import newest_model, running_servers

# Installed in both servers through PYTHONPATH (bench only): on SIGUSR1 the
# process writes what it holds to $KEFU_MEMORY_PROBE_DIR/<pid>-<n>.json
# (and a tracemalloc snapshot when tracing).
SITECUSTOMIZE = """
import os, signal, sys

_DIR = os.environ.get("KEFU_MEMORY_PROBE_DIR")
if _DIR and os.environ.get("KEFU_MEMORY_TRACE_ACTIONS") and "kefu.action_server" in sys.orig_argv:
    import tracemalloc
    tracemalloc.start(int(os.environ["KEFU_MEMORY_TRACE_ACTIONS"]))
if _DIR:
    _count = [0]

    def _probe(signum, frame):
        import gc, json, sys, tracemalloc
        _count[0] += 1
        name = os.path.join(_DIR, f"{os.getpid()}-{_count[0]}")
        gc.collect()
        objects = gc.get_objects()
        trackers = 0
        trackers_module = sys.modules.get("rasa.shared.core.trackers")
        if trackers_module is not None:
            cls = trackers_module.DialogueStateTracker
            trackers = sum(1 for o in objects if isinstance(o, cls))
        store_live = None
        store_module = sys.modules.get("kefu.tracker_store")
        agents = []
        if store_module is not None:
            agents = [o for o in objects if isinstance(o, store_module.EventLogTrackerStore)]
            store_live = sum(len(a._live) for a in agents)
        info = {"gc_objects": len(objects), "trackers": trackers, "live_trackers": store_live}
        del objects, agents
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(name + ".snapshot")
            info["traced_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
        with open(name + ".json.tmp", "w") as f:
            json.dump(info, f)
        os.replace(name + ".json.tmp", name + ".json")

    signal.signal(signal.SIGUSR1, _probe)
"""


def probe(pid: int, probe_dir: Path, seconds: float = 60) -> dict:
    before = set(probe_dir.glob(f"{pid}-*.json"))
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        new = set(probe_dir.glob(f"{pid}-*.json")) - before
        if new:
            return json.loads(max(new, key=lambda p: int(p.stem.split("-")[1])).read_text())
        time.sleep(0.2)
    return {}


def top_growth(probe_dir: Path, pid: int, first: int, last: int, lines: int = 12) -> None:
    import tracemalloc

    old = tracemalloc.Snapshot.load(str(probe_dir / f"{pid}-{first}.snapshot"))
    new = tracemalloc.Snapshot.load(str(probe_dir / f"{pid}-{last}.snapshot"))
    stats = new.compare_to(old, "lineno")
    total = sum(s.size_diff for s in stats)
    print(f"  tracemalloc: Python-traced memory grew {total / 2**20:+.1f} MB; largest growth by line:")
    for stat in stats[:lines]:
        frame = stat.traceback[0]
        name = frame.filename.split("site-packages/")[-1]
        print(f"    {stat.size_diff / 2**20:+7.2f} MB {stat.count_diff:+8d} blocks  {name}:{frame.lineno}")


def stores(prefix: str, db: int, redis: str, live_trackers: int | None, live_seconds: float | None) -> str:
    host, port = redis.rsplit(":", 1)
    live = f"\n  live_trackers: {live_trackers}" if live_trackers is not None else ""
    live += f"\n  live_seconds: {live_seconds}" if live_seconds is not None else ""
    return (
        textwrap.dedent(
            f"""\
        tracker_store:
          type: kefu.tracker_store.MaskingRedisTrackerStore
          url: {host}
          port: {port}
          db: {db}
          key_prefix: {prefix}"""
        )
        + live
        + textwrap.dedent(
            f"""
        lock_store:
          type: redis
          url: {host}
          port: {port}
          db: {db}
          key_prefix: {prefix}
        """
        )
    )


def delete_keys(redis: str, db: int, prefix: str) -> int:
    import redis as redis_lib

    host, port = redis.rsplit(":", 1)
    client = redis_lib.StrictRedis(host=host, port=int(port), db=db)
    deleted = 0
    batch = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    return deleted


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_soak")
    parser.add_argument("--minutes", type=int, default=10, help="one-minute rounds after the warm-up minute")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--live-trackers", type=int, default=None, help="the tracker store's live_trackers")
    parser.add_argument("--live-seconds", type=float, default=None, help="the tracker store's live_seconds")
    parser.add_argument("--malloc-arena-max", type=int, default=None, help="MALLOC_ARENA_MAX for both servers")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--db", type=int, default=5)
    parser.add_argument("--probe", action="store_true", help="count trackers and objects in Rasa each minute")
    parser.add_argument("--tracemalloc", type=int, default=0, help="frames to trace (0: off; implies --probe)")
    parser.add_argument("--trace-actions", type=int, default=0, help="tracemalloc frames in the action server only")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    model = newest_model()
    if model is None:
        raise SystemExit("no model: run `make train` first")
    probe_on = args.probe or args.tracemalloc > 0 or args.trace_actions > 0
    # Alphanumeric: Rasa's lock store ignores any other key prefix.
    prefix = f"memsoak{uuid.uuid4().hex[:8]}"
    probe_dir = Path(tempfile.mkdtemp(prefix="kefu-memory-soak-"))
    (probe_dir / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    env = {"TICKET_LOCK_LIFETIME": "15", "SANIC_WORKERS": "1"}
    if probe_on:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(probe_dir), os.environ.get("PYTHONPATH")]))
        env["KEFU_MEMORY_PROBE_DIR"] = str(probe_dir)
    if args.tracemalloc:
        env["PYTHONTRACEMALLOC"] = str(args.tracemalloc)
    if args.trace_actions:
        env["KEFU_MEMORY_TRACE_ACTIONS"] = str(args.trace_actions)
    if args.malloc_arena_max:
        env["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)
    from kefu.db.engine import database_url as shop_database_url

    database_url = shop_database_url()
    print(
        f"memory soak {args.label}: {platform.node()} {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')} UTC; "
        f"model {model.name}; {args.concurrency} customers; warm-up 60 s + {args.minutes} x 60 s; "
        f"live_trackers {'(default)' if args.live_trackers is None else args.live_trackers}, "
        f"live_seconds {'(default)' if args.live_seconds is None else args.live_seconds}; "
        f"MALLOC_ARENA_MAX {args.malloc_arena_max or '(unset)'}; Redis {args.redis} db {args.db}",
        flush=True,
    )
    try:
        with running_servers(
            model,
            database_url,
            extra_env=env,
            stores=stores(prefix, args.db, args.redis, args.live_trackers, args.live_seconds),
        ) as servers:
            # The action server inherits the same environment but is not probed.
            os.environ["KEFU_TOKEN_SECRET"] = servers.token_secret  # kefu.loadtest signs with it
            # `rasa run` (a console script) is the server process itself (SANIC_WORKERS=1).
            rasa, actions = servers.rasa_pid, servers.actions_pid
            started = rss_mb(rasa)
            print(f"  started: rasa {started:.0f} MB, actions {rss_mb(actions):.0f} MB", flush=True)
            senders = 0
            result = asyncio.run(run_load(servers.rasa_url, SCRIPTS, args.concurrency, 60))
            senders += len({t.sender for t in result.turns})
            warm = {"rasa": rss_mb(rasa), "actions": rss_mb(actions)}
            probes = [probe(rasa, probe_dir)] if probe_on else []
            action_probes = 1 if args.trace_actions else 0
            if action_probes:
                probe(actions, probe_dir)
            print(
                f"  warm-up: {result.summary()['turns_per_s']:.1f} turns/s, {senders} conversations; "
                f"rasa {warm['rasa']:.0f} MB, actions {warm['actions']:.0f} MB" + (f"; {probes[-1]}" if probes else ""),
                flush=True,
            )
            rows = []
            failed = answered = 0
            cpu_before = cpu_seconds(rasa)
            for minute in range(1, args.minutes + 1):
                result = asyncio.run(run_load(servers.rasa_url, SCRIPTS, args.concurrency, 60))
                summary = result.summary()
                failed += summary["failed"]
                answered += summary["answered"]
                senders += len({t.sender for t in result.turns})
                now = {"rasa": rss_mb(rasa), "actions": rss_mb(actions)}
                rows.append(now)
                extra = ""
                if probe_on:
                    probes.append(probe(rasa, probe_dir))
                    extra = f"  {probes[-1]}"
                if action_probes:
                    probe(actions, probe_dir)
                    action_probes += 1
                print(
                    f"  minute {minute:>2}: {summary['turns_per_s']:5.1f} turns/s p99 {summary['p99_ms']:5.0f} ms "
                    f"failed {summary['failed']} apologies {summary['apologies']}; {senders:5d} conversations so far; "
                    f"rasa {now['rasa']:6.0f} MB ({(now['rasa'] / warm['rasa'] - 1) * 100:+5.1f}%), "
                    f"actions {now['actions']:4.0f} MB ({(now['actions'] / warm['actions'] - 1) * 100:+5.1f}%)" + extra,
                    flush=True,
                )
            cpu = (cpu_seconds(rasa) - cpu_before) / max(answered, 1) * 1000
            print(f"  turns answered after the warm-up: {answered}, failed: {failed}; Rasa CPU {cpu:.1f} ms per turn")
            if rows:
                half = rows[len(rows) // 2 - 1] if len(rows) >= 2 else warm
                for name in ("rasa", "actions"):
                    end = rows[-1][name]
                    print(
                        f"  {name:<7} RSS after the warm-up -> at the end: {warm[name]:.0f} MB -> {end:.0f} MB "
                        f"({(end / warm[name] - 1) * 100:+.1f}%); second half of the rounds "
                        f"{(end / half[name] - 1) * 100:+.1f}%",
                        flush=True,
                    )
            if args.tracemalloc and len(probes) >= 2:
                print("  Rasa:")
                top_growth(probe_dir, rasa, 1, len(probes))
            if action_probes >= 2:
                print("  action server:")
                top_growth(probe_dir, actions, 1, action_probes)
    finally:
        print(f"  deleted {delete_keys(args.redis, args.db, prefix)} Redis keys of this run ({prefix}*)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
