"""Cross-validation folds grouped by source sentence, for `make cv`.

Rasa's `rasa test nlu --cross-validation` splits the examples with an
unseeded StratifiedKFold: two phrasings of one sentence ("你好 我要退货" and
"我要退货", or the same request with other punctuation) can sit on both
sides of a fold, and the figure then measures memory rather than
understanding. Here the examples are grouped by their request text (the
normalised message without a leading greeting or trailing thank-you, and
without punctuation or spaces: what the classifier actually sees), and
scikit-learn's StratifiedGroupKFold, seeded, keeps each group in one fold
while keeping the intents' shares alike across folds.

`scripts/grouped_cv.py` puts `grouped_folds` in place of Rasa's
`rasa.nlu.test.generate_folds` and runs Rasa's own cross-validation
otherwise unchanged (training, evaluation and reports are Rasa's).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from kefu.nlu.pleasantry import request_text
from kefu.nlu.text import normalise

SEED = 20261128


def source_group(text: str) -> str:
    """The key two phrasings of one sentence share."""
    normalised = normalise(text)
    return re.sub(r"\W", "", request_text(normalised) or normalised)


def fold_indices(labels: list[str], groups: list[str], n: int, seed: int = SEED) -> list[tuple[list[int], list[int]]]:
    """(train, test) index lists of `n` folds, each group in one fold only."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
    return [(train.tolist(), test.tolist()) for train, test in folds.split(list(range(len(labels))), labels, groups)]


def grouped_folds(n: int, training_data: Any) -> Iterator[tuple[Any, Any]]:
    """Drop-in for `rasa.nlu.test.generate_folds` (same arguments, same result type)."""
    from rasa.shared.nlu.training_data.training_data import TrainingData

    examples = training_data.intent_examples
    labels = [example.get_full_intent() for example in examples]
    groups = [source_group(example.get("text") or "") for example in examples]

    def subset(indices: list[int]) -> TrainingData:
        return TrainingData(
            training_examples=[examples[i] for i in indices],
            entity_synonyms=training_data.entity_synonyms,
            regex_features=training_data.regex_features,
            lookup_tables=training_data.lookup_tables,
            responses=training_data.responses,
        )

    for train, test in fold_indices(labels, groups, n):
        yield subset(train), subset(test)
