"""What the FAQ answer generator (kefu/faq_nlg.py, endpoints.yml `nlg:`)
costs a response, against Rasa's own generator, on the project's domain and
a SQLite shop: an FAQ answer (edited, and not edited) and an ordinary
response. Calls alternate between the generators so that the machine's load
falls on both alike.

    python -m bench.faq_answer_cost [--calls 2000] [--url sqlite:///...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from kefu.db.engine import ensure_schema, make_engine
from kefu.faq import FaqAnswerStore

ROOT = Path(__file__).resolve().parents[1]


async def measure(calls: int, store: FaqAnswerStore) -> None:
    from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker

    from kefu.faq_nlg import FaqAnswerGenerator

    domain = Domain.load(str(ROOT / "domain"))
    generators = {
        "rasa": TemplatedNaturalLanguageGenerator(domain.responses),
        "kefu": FaqAnswerGenerator(domain=domain, store=store),
    }
    tracker = DialogueStateTracker.from_events("bench", [], slots=domain.slots)
    cases = {
        "ordinary response (utter_greet)": "utter_greet",
        "FAQ answer, not edited": "utter_faq/invoice",
        "FAQ answer, edited": "utter_faq/shipping_policy",
    }
    store.save("shipping_policy", "📦 编辑过的运费说明（基准测试）", staff_id=None)
    for label, response in cases.items():
        timings: dict[str, list[float]] = {"rasa": [], "kefu": []}
        for index in range(calls + 50):
            for name, nlg in generators.items():
                began = time.perf_counter()
                await nlg.generate(response, tracker, "rest")
                if index >= 50:  # warm-up
                    timings[name].append((time.perf_counter() - began) * 1e6)
        p50 = {name: statistics.median(values) for name, values in timings.items()}
        p95 = {name: sorted(values)[int(0.95 * len(values)) - 1] for name, values in timings.items()}
        print(
            f"{label}: Rasa's generator p50 {p50['rasa']:.0f} us p95 {p95['rasa']:.0f} us; "
            f"Kefu's p50 {p50['kefu']:.0f} us p95 {p95['kefu']:.0f} us ({calls} calls each)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.faq_answer_cost")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--url", default=None, help="default: a new SQLite shop in a temporary directory")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='kefu-bench-faq-')) / 'shop.sqlite3'}"
    engine = make_engine(url)
    ensure_schema(engine)
    asyncio.run(measure(args.calls, FaqAnswerStore(engine)))


if __name__ == "__main__":
    main()
