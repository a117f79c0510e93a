"""Issue 3 part 4: p50 of `/model/parse` on our server against a stock
`rasa init` bot, side by side on this machine, and the ratio.

Usage: .venv/bin/python scripts/parse_speed.py [--requests 300]

Both servers run at once on free ports and get requests alternately (ours,
then the baseline), so load from other processes hits both alike. Our model
is KEFU_MODEL or the newest models/*.tar.gz; the stock bot is created once
with `rasa init --no-prompt` under var/bench/baseline and reused. The work is
done by bench.parse_speed (shared with `python -m bench`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.parse_speed import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
