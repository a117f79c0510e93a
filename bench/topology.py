"""The production topology under load: one Rasa replica against two behind
nginx (scripts/prod.sh, PostgreSQL shop, append-only Redis), then the CPU,
Redis commands and database transactions a turn costs, the stock `rasa
init` bot alone under the same load, and what that means
for a shop's peak; with --soak, a long run at one concurrency that watches
every process's memory and the p99 minute by minute.

Usage:
  python -m bench.topology [--seconds 40] [--concurrency 8 16] [--replicas 1 2] [--no-baseline]
  python -m bench.topology --soak 600 --concurrency 16      # the 10-minute soak
Loopback only; the PostgreSQL database kefu_bench_topology_* is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from kefu.loadtest import (
    conversations,
    create_postgres_database,
    drop_postgres_database,
    lost_and_doubled,
    run_load,
    running_topology,
    stored_turn_ids,
)
from kefu.shop.demo import showcase
from kefu.testing import newest_model

POSTGRES_ADMIN_URL = os.environ.get("KEFU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CASES = showcase()
SCRIPTS = conversations(
    CASES["shipped"]["order_no"],
    CASES["shipped"]["phone_tail"],
    CASES["delivered_2d"]["order_no"],
    CASES["delivered_2d"]["phone_tail"],
)
# A shopper types a message every 20 s or so at peak (reading, typing).
SECONDS_BETWEEN_MESSAGES = 20.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def servers(topology) -> dict[str, int]:
    return {
        path.stem: int(path.read_text())
        for path in sorted((topology.workdir / "run").glob("*.pid"))
        if path.stem.startswith(("rasa", "actions", "analytics"))
    }


def counters(topology) -> dict[str, float]:
    from sqlalchemy import create_engine

    pids = servers(topology)
    redis_commands = int(topology.redis().info("stats")["total_commands_processed"])
    engine = create_engine(topology.database_url, future=True)
    with engine.connect() as conn:
        transactions = conn.exec_driver_sql(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).scalar()
    engine.dispose()
    return {
        "cpu_rasa": sum(cpu_seconds(p) for n, p in pids.items() if n.startswith("rasa")),
        "cpu_actions": sum(cpu_seconds(p) for n, p in pids.items() if n.startswith("actions")),
        "redis": redis_commands,
        "pg": transactions,
    }


def measure(topology, concurrency: int, seconds: float) -> dict:
    asyncio.run(run_load(topology.url, SCRIPTS, min(concurrency, 4), 5))  # warm-up, untimed
    before = counters(topology)
    result = asyncio.run(run_load(topology.url, SCRIPTS, concurrency, seconds))
    after = counters(topology)
    summary = result.summary()
    answered = max(summary["answered"], 1)
    lost, doubled = lost_and_doubled(result, stored_turn_ids(topology.redis(), {t.sender for t in result.turns}))
    return {
        **summary,
        "lost": lost,
        "doubled": doubled,
        "cpu_rasa_ms": (after["cpu_rasa"] - before["cpu_rasa"]) / answered * 1000,
        "cpu_actions_ms": (after["cpu_actions"] - before["cpu_actions"]) / answered * 1000,
        "redis_per_turn": (after["redis"] - before["redis"]) / answered,
        "pg_per_turn": (after["pg"] - before["pg"]) / answered,
    }


def print_row(name: str, concurrency: int, row: dict) -> None:
    print(
        f"  {name:<28} c={concurrency:<3} {row['turns_per_s']:6.1f} turns/s  p50 {row['p50_ms']:7.1f} ms  "
        f"p99 {row['p99_ms']:7.1f} ms  answered {row['answered']}/{row['attempted']} "
        f"(apologies {row['apologies']}, failed {row['failed']}, lost {row['lost']}, doubled {row['doubled']})  "
        f"CPU/turn rasa {row['cpu_rasa_ms']:.1f} ms + actions {row['cpu_actions_ms']:.1f} ms; "
        f"Redis {row['redis_per_turn']:.1f} commands, PostgreSQL {row['pg_per_turn']:.1f} transactions per turn",
        flush=True,
    )


def measure_baseline(concurrency: int, seconds: float) -> None:
    """The stock `rasa init` bot alone (one `rasa run`, in-memory store, no
    nginx, no action server), the same customers and messages: what Rasa
    itself costs on this machine, side by side with the rows above."""
    from bench.baseline import baseline_model
    from bench.servers import running_baseline

    model, _ = baseline_model()
    with running_baseline(model, with_api=False) as url:
        pid = int(subprocess.check_output(["pgrep", "-f", "--", f"--model {model}"], text=True).split()[0])
        asyncio.run(run_load(url, SCRIPTS, min(concurrency, 4), 5))  # warm-up, untimed
        before = cpu_seconds(pid)
        result = asyncio.run(run_load(url, SCRIPTS, concurrency, seconds))
        cpu_ms = (cpu_seconds(pid) - before) / max(result.summary()["answered"], 1) * 1000
    row = result.summary()
    print(
        f"  {'stock rasa init bot, 1 process':<28} c={concurrency:<3} {row['turns_per_s']:6.1f} turns/s  "
        f"p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  answered {row['answered']}/{row['attempted']} "
        f"(failed {row['failed']})  CPU/turn rasa {cpu_ms:.1f} ms",
        flush=True,
    )


def capacity(row: dict) -> None:
    cpu_turn = (row["cpu_rasa_ms"] + row["cpu_actions_ms"]) / 1000
    rasa_turn = row["cpu_rasa_ms"] / 1000
    customers = 1000
    turns_per_s = customers / SECONDS_BETWEEN_MESSAGES
    cores = turns_per_s * cpu_turn
    # A replica is one Sanic worker: one core at most; keep it at 60% busy
    # so that p99 stays near the measured one.
    replicas = turns_per_s * rasa_turn / 0.6
    print(
        f"\ncapacity (from the two-replica run at the highest concurrency): {cpu_turn * 1000:.0f} ms CPU per turn "
        f"({row['cpu_rasa_ms']:.0f} Rasa + {row['cpu_actions_ms']:.0f} actions), {row['redis_per_turn']:.0f} Redis "
        f"commands and {row['pg_per_turn']:.0f} PostgreSQL transactions per turn."
    )
    print(
        f"  {customers} concurrent customers, one message each {SECONDS_BETWEEN_MESSAGES:.0f} s: {turns_per_s:.0f} "
        f"turns/s -> {cores:.1f} cores busy, about {max(1, round(replicas + 0.5))} Rasa replicas at 60% of a core "
        f"each, {turns_per_s * row['redis_per_turn']:.0f} Redis commands/s, "
        f"{turns_per_s * row['pg_per_turn']:.0f} PostgreSQL transactions/s"
    )


def p99_drift(minutes: list[float]) -> float:
    """Mean p99 of the last three minutes over that of the first three: a
    steady topology stays near 1 (the soak that failed went from 2.2 to 5.3 s)."""
    span = max(1, min(3, len(minutes) // 2))
    return (sum(minutes[-span:]) / span) / (sum(minutes[:span]) / span)


def soak(topology, concurrency: int, seconds: float) -> dict:
    """The soak's figures: totals, p99 by minute, each process's RSS growth
    after the warm-up minute (percent; NaN for a process that was replaced)."""
    pids = servers(topology)
    print(f"soak: {concurrency} customers for {seconds:.0f} s", flush=True)
    asyncio.run(run_load(topology.url, SCRIPTS, concurrency, 60))  # warm-up minute
    warm = {name: rss_mb(pid) for name, pid in pids.items()}
    minutes = []
    totals = {"attempted": 0, "answered": 0, "failed": 0, "apologies": 0, "lost": 0, "doubled": 0}
    for minute in range(int(seconds // 60)):
        result = asyncio.run(run_load(topology.url, SCRIPTS, concurrency, 60))
        summary = result.summary()
        lost, doubled = lost_and_doubled(result, stored_turn_ids(topology.redis(), {t.sender for t in result.turns}))
        for key in ("attempted", "answered", "failed", "apologies"):
            totals[key] += summary[key]
        totals["lost"] += lost
        totals["doubled"] += doubled
        minutes.append(summary["p99_ms"])
        print(
            f"  minute {minute + 1:>2}: {summary['turns_per_s']:.1f} turns/s p50 {summary['p50_ms']:.0f} ms "
            f"p99 {summary['p99_ms']:.0f} ms failed {summary['failed']} apologies {summary['apologies']}",
            flush=True,
        )
    end = {name: rss_mb(pid) for name, pid in pids.items() if Path(f"/proc/{pid}").exists()}
    print(f"  totals: {totals}")
    print("  RSS after the warm-up minute -> at the end (growth):")
    growth = {}
    for name, before in warm.items():
        after = end.get(name, float("nan"))
        growth[name] = (after / before - 1) * 100
        print(f"    {name:<10} {before:7.0f} MB -> {after:7.0f} MB ({growth[name]:+.1f}%)")
    if minutes:
        print(
            f"  p99 by minute: first {minutes[0]:.0f} ms, last {minutes[-1]:.0f} ms, "
            f"max {max(minutes):.0f} ms, min {min(minutes):.0f} ms; last 3 minutes / first 3: {p99_drift(minutes):.2f}"
        )
    return {"totals": totals, "p99_ms_by_minute": minutes, "rss_growth_percent": growth}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.topology")
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--soak", type=float, default=0, help="soak for this many seconds instead")
    parser.add_argument("--no-baseline", action="store_true", help="skip the stock rasa init bot's rows")
    args = parser.parse_args()
    model = newest_model()
    if model is None:
        raise SystemExit("no model: run `make train` first")
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}; "
        f"model {model.name}; {args.seconds:.0f} s per row, through nginx",
        flush=True,
    )
    last = None
    for replicas in [2] if args.soak else args.replicas:
        name = f"kefu_bench_topology_{uuid.uuid4().hex[:8]}"
        database_url = create_postgres_database(POSTGRES_ADMIN_URL, name)
        try:
            with running_topology(
                model,
                database_url,
                Path(tempfile.mkdtemp(prefix="kefu-topology-")),
                replicas=replicas,
                action_servers=2,
            ) as topology:
                if args.soak:
                    soak(topology, args.concurrency[0], args.soak)
                    continue
                for concurrency in args.concurrency:
                    last = measure(topology, concurrency, args.seconds)
                    print_row(f"{replicas} replica(s), 2 action servers", concurrency, last)
        finally:
            drop_postgres_database(POSTGRES_ADMIN_URL, name)
    if not args.soak and not args.no_baseline:
        for concurrency in args.concurrency:
            measure_baseline(concurrency, args.seconds)
    if last is not None:
        capacity(last)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
