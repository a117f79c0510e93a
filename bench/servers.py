"""Starting the baseline bot's server for a benchmark."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.baseline import BASELINE_DIR, RASA
from kefu.testing import _stop, free_port, wait_for


@contextmanager
def running_baseline(model: Path, *, with_api: bool = True) -> Iterator[str]:
    port = free_port()
    log = BASELINE_DIR / "server.log"
    process = subprocess.Popen(
        [RASA, "run", "--model", str(model), "--port", str(port), "--interface", "127.0.0.1"]
        + (["--enable-api"] if with_api else []),
        cwd=BASELINE_DIR,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/", process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)
