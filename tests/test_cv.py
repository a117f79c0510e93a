"""Cross-validation folds grouped by source sentence (kefu.cv), without training."""

from __future__ import annotations

from kefu.cv import fold_indices, source_group


def test_phrasings_of_one_sentence_share_a_group() -> None:
    assert source_group("你好，我想退货") == source_group("我想退货!") == source_group("在吗 我想退货 谢谢")
    assert source_group("我想退货") != source_group("我想换货")


def test_a_group_never_sits_on_both_sides_of_a_fold_and_every_example_is_tested_once() -> None:
    texts = [f"{opener}第{i}句{closer}" for i in range(200) for opener, closer in (("", ""), ("你好 ", " 谢谢"))]
    labels = [f"intent{i % 4}" for i in range(200) for _ in range(2)]
    groups = [source_group(t) for t in texts]
    folds = fold_indices(labels, groups, 5)
    tested = sorted(i for _, test in folds for i in test)
    assert tested == list(range(len(texts)))
    for train, test in folds:
        assert not {groups[i] for i in train} & {groups[i] for i in test}
        assert {labels[i] for i in test} == {"intent0", "intent1", "intent2", "intent3"}
    assert folds == fold_indices(labels, groups, 5)  # seeded: two runs split alike


def test_intents_only_leaves_out_diet_and_the_response_selector_and_keeps_the_rest_in_order(tmp_path) -> None:
    import runpy
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    grouped_cv = runpy.run_path(str(root / "scripts" / "grouped_cv.py"))
    left_out, intents_only_config = grouped_cv["NOT_CHOOSING_THE_INTENT"], grouped_cv["intents_only_config"]

    full = yaml.safe_load((root / "config.yml").read_text(encoding="utf-8"))
    names = [c["name"] for c in full["pipeline"]]
    assert left_out <= set(names)  # a renamed component would stay in silently
    reduced = yaml.safe_load(Path(intents_only_config(str(root / "config.yml"), str(tmp_path))).read_text())
    assert [c["name"] for c in reduced["pipeline"]] == [n for n in names if n not in left_out]
    assert reduced["policies"] == full["policies"] and reduced["language"] == full["language"]
