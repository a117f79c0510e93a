"""Choose the FallbackClassifier thresholds on a dev set of our own
real-style messages (tests/nlu/dev_calibration.yml by default; never the
external benchmark).

Each message is parsed once; the classifier's own ranking (the intent
ranking without the `nlu_fallback` entry the FallbackClassifier inserts)
is kept, and every (threshold, ambiguity threshold) pair is then replayed on
it the way Rasa's FallbackClassifier decides: fall back when the top
confidence is below the threshold or the top two are closer than the
ambiguity threshold. No retraining per threshold. Intents set by rule
(a bare number, a keyboard mash, a card number: confidence 1.0 at the
head of the ranking) are certain and never replayed.

Scoring: a message labelled `nlu_fallback` (the dev set's vague fragments
and requests no intent covers) is right only when it falls back; any other
message is right only when it is answered with its intent (for faq, with
its sub-intent, as the response selector picked it). Chosen: the lowest
threshold (then ambiguity threshold) whose accuracy is within one binomial
standard error of the best pair's (the one-standard-error rule: on a few
hundred messages closer accuracies are noise, and a lower threshold loses
fewer turns to a needless fallback on text unlike ours). Both the best pair
and the chosen one are printed. `--also` files are reported at the chosen pair and
along the grid for information only (their labels have no nlu_fallback,
so they would only ever push the threshold down).

Usage: python scripts/calibrate_fallback.py [--model models/x.tar.gz]
           [--nlu FILE] [--also FILE ...] [--write]
`--write` puts the chosen pair into config.yml's FallbackClassifier.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FALLBACK = "nlu_fallback"
# Classified like any intent, then made a fallback whatever the threshold
# (kefu.nlu.components.UnclearAsFallback).
UNCLEAR = "unclear"
RULE_INTENTS = {"inform", "sensitive_info", FALLBACK}
THRESHOLDS = tuple(round(0.10 + 0.01 * i, 2) for i in range(61))  # 0.10 .. 0.70
AMBIGUITIES = tuple(round(0.01 * i, 2) for i in range(11))  # 0.00 .. 0.10


@dataclass
class Parsed:
    expected: str
    ranking: list[tuple[str, float]]  # the classifier's, best first, faq as faq/<key>
    rule: str | None = None  # intent decided by rule, if any


def parse_all(agent, examples) -> list[Parsed]:
    rows = []
    for message in examples:
        parse = asyncio.run(agent.parse_message(message.get("text")))
        ranking = parse.get("intent_ranking") or []
        expected = message.get_full_intent()  # faq/<key>: the sub-intent must be right too
        head = ranking[0] if ranking else parse["intent"]
        if head["name"] in RULE_INTENTS and head["confidence"] >= 1.0:
            rows.append(Parsed(expected, [], rule=head["name"]))
            continue
        faq_key = (
            ((parse.get("response_selector") or {}).get("faq") or {}).get("response", {}).get("intent_response_key")
        )
        own = [
            (faq_key if r["name"] == "faq" and faq_key else r["name"], float(r["confidence"]))
            for r in ranking
            if r["name"] != FALLBACK
        ]
        rows.append(Parsed(expected, own))
    return rows


def decide(row: Parsed, threshold: float, ambiguity: float) -> str:
    if row.rule:
        return row.rule
    top, confidence = row.ranking[0]
    second = row.ranking[1][1] if len(row.ranking) > 1 else 0.0
    if top == UNCLEAR or confidence < threshold or confidence - second < ambiguity:
        return FALLBACK
    return top


def score(rows: list[Parsed], threshold: float, ambiguity: float) -> tuple[float, int, int, int]:
    """accuracy, fallbacks, fallbacks of messages the model had right,
    out-of-scope messages that fell back"""
    right = fallbacks = lost = caught = 0
    for row in rows:
        predicted = decide(row, threshold, ambiguity)
        right += predicted == row.expected
        if predicted == FALLBACK:
            fallbacks += 1
            if row.expected == FALLBACK:
                caught += 1
            elif not row.rule and row.ranking[0][0] == row.expected:
                lost += 1
    return right / max(len(rows), 1), fallbacks, lost, caught


def choose(
    rows: list[Parsed],
) -> tuple[dict[tuple[float, float], tuple[float, int, int, int]], tuple[float, float], tuple[float, float], float]:
    """The grid of scores, the best pair, the chosen pair and one standard error."""
    grid = {(t, a): score(rows, t, a) for t in THRESHOLDS for a in AMBIGUITIES}
    top_pair = max(grid, key=lambda pair: (grid[pair][0], -pair[0], -pair[1]))
    top = grid[top_pair][0]
    # One-standard-error rule: a few hundred messages cannot tell accuracies
    # a binomial standard error apart, so take the lowest pair within one of
    # the best (fewer needless fallbacks on text unlike the dev set's).
    standard_error = math.sqrt(top * (1 - top) / max(len(rows), 1))
    chosen = min((pair for pair, s in grid.items() if s[0] >= top - standard_error), key=lambda pair: pair)
    return grid, top_pair, chosen, standard_error


def write_config(path: Path, threshold: float, ambiguity: float) -> None:
    text = path.read_text(encoding="utf-8")
    block = re.search(r"- name: FallbackClassifier\n(\s+threshold: )[0-9.]+\n(\s+ambiguity_threshold: )[0-9.]+", text)
    if block is None:
        raise SystemExit(f"no FallbackClassifier block with threshold and ambiguity_threshold in {path}")
    new = f"- name: FallbackClassifier\n{block.group(1)}{threshold}\n{block.group(2)}{ambiguity}"
    path.write_text(text[: block.start()] + new + text[block.end() :], encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path)
    parser.add_argument("--nlu", type=Path, default=ROOT / "tests" / "nlu" / "dev_calibration.yml")
    parser.add_argument("--also", type=Path, nargs="*", default=[ROOT / "tests" / "nlu" / "holdout_realstyle.yml"])
    parser.add_argument("--write", action="store_true", help="put the chosen pair into config.yml")
    args = parser.parse_args()
    from rasa.core.agent import Agent
    from rasa.shared.nlu.training_data.loading import load_data

    from kefu.testing import newest_model

    model = args.model or newest_model()
    if model is None:
        raise SystemExit("no trained model: run `make train` or pass --model")
    # Parses are kept per model and file content (var/calibration): a re-run costs nothing.
    cache = ROOT / "var" / "calibration" / f"{model.name}.json"
    parsed = json.loads(cache.read_text()) if cache.exists() else {}
    agent = None
    for path in [args.nlu, *args.also]:
        key = f"{path.name}:{hashlib.sha1(path.read_bytes()).hexdigest()}"
        if key not in parsed:
            agent = agent or Agent.load(str(model))
            parsed[key] = [asdict(row) for row in parse_all(agent, load_data(str(path)).intent_examples)]
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(parsed, ensure_ascii=False))
    loaded = {
        path.name: [Parsed(r["expected"], [tuple(x) for x in r["ranking"]], r["rule"]) for r in parsed[key]]
        for path in [args.nlu, *args.also]
        for key in [f"{path.name}:{hashlib.sha1(path.read_bytes()).hexdigest()}"]
    }
    rows = loaded[args.nlu.name]
    others = {path.name: loaded[path.name] for path in args.also}
    out_of_scope = sum(row.expected == FALLBACK for row in rows)
    print(f"{args.nlu.name}: {len(rows)} messages ({out_of_scope} should fall back), model {model.name}")

    grid, top_pair, (best_threshold, best_ambiguity), standard_error = choose(rows)
    top = grid[top_pair][0]
    best = grid[(best_threshold, best_ambiguity)][0]
    print(
        f"best accuracy {top:.3f} at threshold {top_pair[0]} ambiguity {top_pair[1]}; "
        f"one standard error {standard_error:.3f}"
    )
    print(
        "threshold ambiguity  accuracy  fallbacks  of which right  out-of-scope caught"
        + "".join(f"  {name}" for name in others)
    )
    shown = sorted(
        {(t, best_ambiguity) for t in THRESHOLDS[::5]}
        | {(best_threshold, a) for a in (0.0, 0.05, 0.1)}
        | {(best_threshold, best_ambiguity), top_pair}
    )
    for t, a in shown:
        accuracy, fallbacks, lost, caught = grid[(t, a)]
        extra = "".join(f"  {score(other, t, a)[0]:>{len(name)}.3f}" for name, other in others.items())
        mark = "  <- chosen" if (t, a) == (best_threshold, best_ambiguity) else ""
        print(f"  {t:<8.2f}{a:<10.2f}{accuracy:>9.3f}{fallbacks:>11}{lost:>16}{caught:>21}{extra}{mark}")
    plateau = sorted(t for (t, a), s in grid.items() if a == best_ambiguity and s[0] == best)
    print(
        f"chosen: threshold {best_threshold} ambiguity_threshold {best_ambiguity}: accuracy {best:.3f} "
        f"(the lowest pair within one standard error of the best; same accuracy for thresholds "
        f"{plateau[0]}-{plateau[-1]} at this ambiguity)"
    )
    for name, other in others.items():
        accuracy, fallbacks, lost, _ = score(other, best_threshold, best_ambiguity)
        print(f"  {name}: accuracy {accuracy:.3f} at the chosen pair, {fallbacks} fallbacks ({lost} of them right)")
    if args.write:
        write_config(ROOT / "config.yml", best_threshold, best_ambiguity)
        print("config.yml updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
