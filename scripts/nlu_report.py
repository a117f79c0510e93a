"""Print the figures of a `rasa test nlu` results folder: intent accuracy,
macro F1, FAQ sub-intent accuracy, entity F1 per entity (from the extractor
responsible for it) and the confusion pairs that remain.

Usage: python scripts/nlu_report.py RESULTS_DIR
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

EXTRACTOR_OF = {
    "order_no": "ShopRuleEntityExtractor",
    "phone_tail": "ShopRuleEntityExtractor",
    "tracking_no": "ShopRuleEntityExtractor",
    "price_max": "ShopRuleEntityExtractor",
    "score": "ShopRuleEntityExtractor",
    "size": "ShopRuleEntityExtractor",
    "product": "CatalogueEntityExtractor",
    "brand": "CatalogueEntityExtractor",
    "category": "CatalogueEntityExtractor",
    "color": "DIETClassifier",
    "reason": "DIETClassifier",
}


def main(folder: str) -> int:
    results = Path(folder)
    intents = json.loads((results / "intent_report.json").read_text())
    print(
        f"intent accuracy {intents['accuracy']:.3f}  macro F1 {intents['macro avg']['f1-score']:.3f}"
        f"  ({intents['macro avg']['support']} held-out examples)"
    )
    faq = results / "response_selection_report.json"
    if faq.exists():
        report = json.loads(faq.read_text())
        # `make cv --intents-only` has no response selector: every faq/* key
        # then "confused with" the empty answer, which is not an accuracy of 0.
        answered = report.get("accuracy") or any(
            key for row in report.values() if isinstance(row, dict) for key in row.get("confused_with", {})
        )
        if answered:
            print(f"faq/* sub-intent accuracy {report['accuracy']:.3f}")
        else:
            print("faq/* sub-intent accuracy: not measured (no response selector in this run)")
    for entity, extractor in EXTRACTOR_OF.items():
        path = results / f"{extractor}_report.json"
        if path.exists():
            row = json.loads(path.read_text()).get(entity)
            if row and row.get("support"):
                print(f"entity {entity:<12} F1 {row['f1-score']:.3f}  (n={row['support']}, {extractor})")
    errors = results / "intent_errors.json"
    if errors.exists():
        pairs = Counter((e["intent"], e["intent_prediction"]["name"]) for e in json.loads(errors.read_text()))
        print(
            "remaining confusions (expected -> predicted):",
            ", ".join(f"{a}->{b} x{n}" for (a, b), n in pairs.most_common(10)) or "none",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
