"""`/model/parse` latency of our server against a stock `rasa init` bot,
measured side by side in one run (alternating requests, same machine).

Usage: python -m bench.parse_speed [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.baseline import baseline_model
from kefu.db.engine import make_engine
from kefu.shop.demo import seed
from kefu.testing import newest_model, running_servers

OURS = [
    "小米14多少钱",
    "推荐一款三千以内的手机",
    "我的订单2026000000000001到哪了",
    "尾号8000",
    "我要退货 尺码不合适",
    "运费多少",
    "有人冒充客服让我转账",
    "亲在吗",
    "airpods pro2续航多久",
    "五星",
]
BASELINE = [
    "hello",
    "I am feeling very sad today",
    "yes",
    "are you a bot?",
    "great, thanks",
    "goodbye",
    "no",
    "I am happy",
    "hi there",
    "not really",
]


def post(url: str, text: str) -> float:
    request = urllib.request.Request(
        url + "/model/parse",
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(ours_url: str, baseline_url: str, requests: int) -> dict:
    for i in range(20):  # warm-up
        post(ours_url, OURS[i % len(OURS)])
        post(baseline_url, BASELINE[i % len(BASELINE)])
    ours, base = [], []
    for i in range(requests):
        ours.append(post(ours_url, OURS[i % len(OURS)]))
        base.append(post(baseline_url, BASELINE[i % len(BASELINE)]))
    return {
        "ours_p50_ms": statistics.median(ours),
        "ours_p95_ms": percentile(ours, 0.95),
        "baseline_p50_ms": statistics.median(base),
        "baseline_p95_ms": percentile(base, 0.95),
        "ratio_p50": statistics.median(ours) / statistics.median(base),
        "requests": requests,
    }


def main() -> int:
    from bench.servers import running_baseline

    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    model = newest_model()
    if model is None:
        raise SystemExit("no model of ours: run `make train` first")
    baseline, _ = baseline_model()
    database = Path(tempfile.mkdtemp()) / "shop.sqlite3"
    seed(make_engine(f"sqlite:///{database}"), orders=1000)
    with running_servers(model, f"sqlite:///{database}") as ours, running_baseline(baseline) as base_url:
        result = measure(ours.rasa_url, base_url, args.requests)
    print(f"/model/parse over {result['requests']} requests each, alternating:")
    print(f"  ours      p50 {result['ours_p50_ms']:.1f} ms  p95 {result['ours_p95_ms']:.1f} ms")
    print(f"  baseline  p50 {result['baseline_p50_ms']:.1f} ms  p95 {result['baseline_p95_ms']:.1f} ms")
    print(f"  ours/baseline p50 ratio {result['ratio_p50']:.2f} (target <= 2.0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
