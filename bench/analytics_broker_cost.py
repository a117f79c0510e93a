"""What the analytics event broker costs a turn: two bots side by side on the
same model, one with the broker of endpoints.yml and one without
(`event_broker: null`), each on its own SQLite shop; requests alternate
between them so that the machine's load falls on both alike.

    python -m bench.analytics_broker_cost [--turns 120]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from kefu.db.engine import make_engine
from kefu.shop.demo import seed
from kefu.testing import newest_model, running_servers

MESSAGES = ["你好", "小米14多少钱", "有货吗", "运费多少", "谢谢"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics_broker_cost")
    parser.add_argument("--turns", type=int, default=120)
    args = parser.parse_args()
    model = newest_model()
    assert model is not None, "no trained model"
    urls = []
    for name in ("with", "without"):
        path = Path(tempfile.mkdtemp(prefix=f"kefu-broker-{name}-")) / "shop.sqlite3"
        seed(make_engine(f"sqlite:///{path}"), orders=100)
        urls.append(f"sqlite:///{path}")
    with (
        running_servers(model, urls[0]) as with_broker,
        running_servers(model, urls[1], stores="event_broker: null\n") as without_broker,
    ):
        timings: dict[str, list[float]] = {"with": [], "without": []}
        for turn in range(args.turns + 10):
            for name, servers in (("with", with_broker), ("without", without_broker)):
                sender = f"cost-{name}-{turn // len(MESSAGES)}"
                began = time.perf_counter()
                servers.say(sender, MESSAGES[turn % len(MESSAGES)])
                if turn >= 10:  # warm-up
                    timings[name].append((time.perf_counter() - began) * 1000)
    p50 = {name: statistics.median(values) for name, values in timings.items()}
    for name, values in timings.items():
        ordered = sorted(values)
        print(
            f"  {name:7s} broker: p50 {p50[name]:.1f} ms  p95 {ordered[int(0.95 * len(ordered)) - 1]:.1f} ms"
            f"  ({len(values)} turns)"
        )
    print(f"  with/without p50 ratio {p50['with'] / p50['without']:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
