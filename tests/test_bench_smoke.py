"""A tiny run of the benchmark harness (the real one is `make bench`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.model]
ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_smoke_run(trained_model, tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-baseline", "--modes", "sqlite,redis", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "KEFU_MODEL": str(trained_model)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "concurrency  1: p50" in result.stdout and "order_by_number" in result.stdout
    on_sqlite, on_redis = json.loads(out.read_text())
    assert "SQLite store" in on_sqlite["name"]
    assert "Redis stores, 2 workers" in on_redis["name"]
    # Two Sanic workers (and the process that starts them) answered.
    assert len([k for k in on_redis["rss_mb"] if k.startswith("rasa")]) == 3
    for ours in (on_sqlite, on_redis):
        assert ours["c1"]["turns"] > 0 and ours["parse_p50_ms"] > 0
        assert ours["growth"]["turnN_ms"] > 0 and ours["growth"]["returning_ms"] > 0
