"""Rasa's NLU cross-validation with folds grouped by source sentence.

Runs `rasa test nlu --cross-validation` exactly as given on the command line,
with one change: the folds come from `kefu.cv.grouped_folds` (copies of one
sentence never on both sides of a fold; seeded, so two runs split alike)
instead of Rasa's unseeded, ungrouped StratifiedKFold.

`--intents-only` (what `make cv` runs) leaves out of each fold's pipeline
the components that do not take part in choosing the intent: DIET, which
only tags colours and reasons here, and the FAQ ResponseSelector, which
runs after the intent is chosen. Each fold's intent classifier gets the
same features as with the whole pipeline (the components left out come
after it), and five folds take 15 minutes, not one to two hours; the folds
then report no DIET entities and no faq/* sub-intents.

Usage: python scripts/grouped_cv.py [--intents-only] --nlu data --config config.yml --folds 5 --out var/cv
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

# Components that read the features but whose output never reaches the intent.
NOT_CHOOSING_THE_INTENT = {"DIETClassifier", "kefu.nlu.components.RetrievalIntentResponseSelector"}


def intents_only_config(config_path: str, directory: str) -> str:
    config = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    config["pipeline"] = [c for c in config["pipeline"] if c["name"] not in NOT_CHOOSING_THE_INTENT]
    path = Path(directory) / "config-intents-only.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return str(path)


def main() -> None:
    import rasa.nlu.test
    from rasa.__main__ import main as rasa_main

    from kefu.cv import grouped_folds

    args = sys.argv[1:]
    with tempfile.TemporaryDirectory() as directory:
        if "--intents-only" in args:
            args.remove("--intents-only")
            at = args.index("--config") + 1
            args[at] = intents_only_config(args[at], directory)
        rasa.nlu.test.generate_folds = grouped_folds
        sys.argv = ["rasa", "test", "nlu", "--cross-validation", *args]
        rasa_main()


if __name__ == "__main__":
    main()
