"""Choose the FallbackClassifier threshold on a dev split of our own
real-style messages (tests/nlu/dev_realstyle.yml by default; never the
external benchmark): for each threshold, how many messages would fall back,
how many of those the model had right (fallbacks that cost a turn for
nothing), and the accuracy of the messages it answers.

Usage: python scripts/calibrate_fallback.py [--model models/x.tar.gz] [--nlu FILE]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)


def expected_and_ranking(agent, examples) -> list[tuple[str, list[tuple[str, float]]]]:
    rows = []
    for message in examples:
        parse = asyncio.run(agent.parse_message(message.get("text")))
        ranking = [
            (r["name"], r["confidence"]) for r in parse.get("intent_ranking") or [] if r["name"] != "nlu_fallback"
        ]
        if not ranking:  # decided by rule (bare number, card number): certain
            ranking = [(parse["intent"]["name"], 1.0)]
        expected = message.get("intent")
        rows.append((expected.split("/", 1)[0], ranking))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path)
    parser.add_argument("--nlu", type=Path, default=ROOT / "tests" / "nlu" / "dev_realstyle.yml")
    parser.add_argument("--ambiguity", type=float, default=0.05)
    args = parser.parse_args()
    from rasa.core.agent import Agent
    from rasa.shared.nlu.training_data.loading import load_data

    from kefu.testing import newest_model

    model = args.model or newest_model()
    if model is None:
        raise SystemExit("no trained model: run `make train` or pass --model")
    agent = Agent.load(str(model))
    rows = expected_and_ranking(agent, load_data(str(args.nlu)).intent_examples)
    print(f"{args.nlu.name}: {len(rows)} messages, model {model.name}, ambiguity threshold {args.ambiguity}")
    print("threshold  fallbacks  of which right  answered accuracy  overall accuracy")
    for threshold in THRESHOLDS:
        fallback = right_fallback = answered_right = 0
        for expected, ranking in rows:
            top, confidence = ranking[0]
            second = ranking[1][1] if len(ranking) > 1 else 0.0
            if confidence < threshold or confidence - second < args.ambiguity:
                fallback += 1
                right_fallback += top == expected
            else:
                answered_right += top == expected
        answered = len(rows) - fallback
        print(
            f"  {threshold:<9.2f}{fallback:>9}{right_fallback:>15}"
            f"{answered_right / max(answered, 1):>19.3f}{answered_right / len(rows):>18.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
