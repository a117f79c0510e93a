"""Accuracy of the NLU on an external benchmark, per intent and per group.

The benchmark is not part of this project: 2,250 real shopper utterances
labelled with the intents of docs/intents.md, kept outside the repository
(by default in ../shared/eval/, beside the clone) and read in place, never
copied or trained on. Without it this script says so and stops.

Usage: python scripts/eval_external.py [--model models/x.tar.gz] [--benchmark file.jsonl] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BENCHMARK = ROOT.parent / "shared" / "eval" / "external_nlu.jsonl"
GROUPS = {
    "product": ["product_price", "product_stock", "product_spec", "product_recommend", "promotions"],
    "order": ["order_status", "track_shipment", "cancel_order", "change_address", "inform"],
    "after-sales": [
        "request_return",
        "request_exchange",
        "request_refund",
        "request_repair",
        "complaint",
        "aftersales_status",
        "return_policy",
    ],
    "payment/security": ["payment_methods", "payment_failed", "security_report", "account_security", "invoice"],
    "social": [
        "greet",
        "goodbye",
        "thank",
        "affirm",
        "deny",
        "bot_challenge",
        "human_handoff",
        "out_of_scope",
        "rate_service",
        "shipping_policy",
    ],
}


def predicted_intent(parse: dict) -> str:
    name = (parse.get("intent") or {}).get("name") or ""
    if name == "faq":
        key = parse.get("response_selector", {}).get("faq", {}).get("response", {}).get("intent_response_key")
        return key.split("/", 1)[1] if key else name
    return name


async def evaluate(model: Path, benchmark: Path) -> dict:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    rows = [json.loads(line) for line in benchmark.read_text(encoding="utf-8").splitlines() if line.strip()]
    totals: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    for row in rows:
        got = predicted_intent(await agent.parse_message(row["text"]))
        totals[row["intent"]] += 1
        if got == row["intent"]:
            correct[row["intent"]] += 1
        else:
            confusions[(row["intent"], got)] += 1
    group_of = {intent: group for group, intents in GROUPS.items() for intent in intents}
    groups: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for intent, total in totals.items():
        groups[group_of.get(intent, "other")][0] += correct[intent]
        groups[group_of.get(intent, "other")][1] += total
    return {
        "rows": len(rows),
        "accuracy": sum(correct.values()) / max(len(rows), 1),
        "per_intent": {i: {"n": totals[i], "accuracy": correct[i] / totals[i]} for i in sorted(totals)},
        "per_group": {g: {"n": n, "accuracy": c / n} for g, (c, n) in sorted(groups.items())},
        "top_confusions": [{"expected": e, "predicted": p, "n": n} for (e, p), n in confusions.most_common(12)],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path)
    parser.add_argument(
        "--benchmark",
        type=Path,
        default=DEFAULT_BENCHMARK,
        help="JSON lines with `text` and `intent` (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from kefu.testing import newest_model

    model = args.model or newest_model()
    if model is None:
        print("no trained model: run `make train` or pass --model")
        return 2
    if not args.benchmark.exists():
        print(f"the external benchmark is not in this repository; not found at {args.benchmark} (see --benchmark)")
        return 2
    report = asyncio.run(evaluate(model, args.benchmark))
    print(f"external benchmark: {report['rows']} utterances, accuracy {report['accuracy']:.3f}")
    print("per group:")
    for group, row in report["per_group"].items():
        print(f"  {group:<18} n={row['n']:<5} accuracy {row['accuracy']:.3f}")
    print("per intent:")
    for intent, row in report["per_intent"].items():
        print(f"  {intent:<18} n={row['n']:<5} accuracy {row['accuracy']:.3f}")
    print("most frequent confusions (expected -> predicted):")
    for row in report["top_confusions"]:
        print(f"  {row['expected']} -> {row['predicted']}: {row['n']}")
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
