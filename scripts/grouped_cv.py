"""Rasa's NLU cross-validation with folds grouped by source sentence.

Runs `rasa test nlu --cross-validation` exactly as given on the command line,
with one change: the folds come from `kefu.cv.grouped_folds` (copies of one
sentence never on both sides of a fold; seeded, so two runs split alike)
instead of Rasa's unseeded, ungrouped StratifiedKFold.

Usage: python scripts/grouped_cv.py --nlu data --config config.yml --folds 5 --out var/cv
"""

from __future__ import annotations

import sys


def main() -> None:
    import rasa.nlu.test
    from rasa.__main__ import main as rasa_main

    from kefu.cv import grouped_folds

    rasa.nlu.test.generate_folds = grouped_folds
    sys.argv = ["rasa", "test", "nlu", "--cross-validation", *sys.argv[1:]]
    rasa_main()


if __name__ == "__main__":
    main()
