"""The baseline: a stock `rasa init` bot, trained once and cached under
var/bench/baseline (same Python, same Rasa as ours)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_DIR = ROOT / "var" / "bench" / "baseline"
RASA = str(Path(sys.executable).parent / "rasa")


def baseline_model() -> tuple[Path, float | None]:
    """(model path, training seconds if it was trained now)."""
    models = sorted((BASELINE_DIR / "models").glob("*.tar.gz"))
    if models:
        return models[-1], None
    BASELINE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [RASA, "init", "--no-prompt", "--init-dir", str(BASELINE_DIR)],
        check=True,
        cwd=BASELINE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    models = sorted((BASELINE_DIR / "models").glob("*.tar.gz"))
    if models:  # `rasa init` trains once itself; time a training of our own for a fair figure
        for model in models:
            model.unlink()
    started = time.monotonic()
    subprocess.run(
        [RASA, "train", "--fixed-model-name", "baseline"],
        check=True,
        cwd=BASELINE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return BASELINE_DIR / "models" / "baseline.tar.gz", time.monotonic() - started
