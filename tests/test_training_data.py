"""The NLU training data: coverage of the contract, no contradictions, and
entity annotations on jieba token boundaries (DIET silently ignores the rest)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "intents.md"

CONTRACT_INTENTS = {
    "greet",
    "goodbye",
    "thank",
    "affirm",
    "deny",
    "bot_challenge",
    "human_handoff",
    "out_of_scope",
    "product_price",
    "product_stock",
    "product_spec",
    "product_recommend",
    "order_status",
    "track_shipment",
    "cancel_order",
    "change_address",
    "inform",
    "request_return",
    "request_exchange",
    "request_refund",
    "request_repair",
    "complaint",
    "aftersales_status",
    "payment_methods",
    "payment_failed",
    "security_report",
    "account_security",
    "shipping_policy",
    "return_policy",
    "invoice",
    "promotions",
    "rate_service",
    "subscribe_marketing",
    "unsubscribe_marketing",
}
FAQ = {"payment_methods", "shipping_policy", "return_policy", "invoice"}
DIET_ENTITIES = {"size", "color", "reason"}
MIN_EXAMPLES = 40


@pytest.fixture(scope="module")
def training_data():
    from rasa.shared.nlu.training_data.loading import load_data

    return load_data(str(ROOT / "data" / "nlu"))


def _intent_of(message) -> str:
    intent = message.get("intent")
    full = message.get("intent_response_key")
    return full.split("/", 1)[1] if full else intent


def test_the_contract_in_this_test_matches_the_spec():
    table = re.findall(r"^\| (\w+) \|", CONTRACT.read_text(encoding="utf-8"), flags=re.M)
    spec_intents = set(table[: table.index("entity")]) - {"intent"}
    assert spec_intents == CONTRACT_INTENTS


def test_every_contract_intent_has_enough_varied_examples(training_data):
    counts = Counter(_intent_of(m) for m in training_data.intent_examples)
    short = {i: counts.get(i, 0) for i in CONTRACT_INTENTS if counts.get(i, 0) < MIN_EXAMPLES}
    assert not short, f"intents with fewer than {MIN_EXAMPLES} examples: {short}"


def test_faq_intents_are_retrieval_intents(training_data):
    keys = {m.get("intent_response_key") for m in training_data.intent_examples if m.get("intent") == "faq"}
    assert keys == {f"faq/{name}" for name in FAQ}


def test_no_sentence_is_labelled_with_two_intents(training_data):
    labels = defaultdict(set)
    for message in training_data.intent_examples:
        labels[message.get("text").strip().lower()].add(message.get("intent_response_key") or message.get("intent"))
    clashes = {text: sorted(intents) for text, intents in labels.items() if len(intents) > 1}
    assert not clashes


def test_training_data_annotates_only_the_entities_diet_learns(training_data):
    annotated = {e["entity"] for m in training_data.training_examples for e in m.get("entities") or []}
    assert annotated <= DIET_ENTITIES, (
        f"rule/catalogue entities annotated in training data: {annotated - DIET_ENTITIES}"
    )


def test_entity_annotations_fall_on_jieba_token_boundaries(training_data):
    import jieba

    from kefu.nlu.text import normalise

    userdict = ROOT / "var" / "nlu" / "jieba" / "userdict.txt"
    if userdict.exists():
        jieba.load_userdict(str(userdict))
    misaligned = []
    for message in training_data.training_examples:
        entities = message.get("entities") or []
        if not entities:
            continue
        text = normalise(message.get("text"))
        boundaries = {0, len(text)}
        for _, start, end in jieba.tokenize(text):
            boundaries.update((start, end))
        for entity in entities:
            if entity["start"] not in boundaries or entity["end"] not in boundaries:
                misaligned.append((message.get("text"), entity["entity"], entity["start"], entity["end"]))
    assert not misaligned


# Compared after normalisation, so a traditional-character copy of a training
# sentence counts. Not dev_realstyle.yml: a dev split for choosing options,
# it shares 30 short messages (我要退款, 包邮吗) with data/nlu.
@pytest.mark.parametrize(
    "evaluation_set", ["holdout.yml", "holdout_realstyle.yml", "holdout_unclear.yml", "dev_calibration.yml"]
)
def test_no_evaluation_set_message_is_in_the_training_data(training_data, evaluation_set):
    from rasa.shared.nlu.training_data.loading import load_data

    from kefu.nlu.text import normalise

    evaluation = load_data(str(ROOT / "tests" / "nlu" / evaluation_set))
    trained = {normalise(m.get("text")).replace(" ", "") for m in training_data.intent_examples}
    leaked = [m.get("text") for m in evaluation.intent_examples if normalise(m.get("text")).replace(" ", "") in trained]
    assert not leaked


def test_the_holdout_set_covers_every_contract_intent():
    from rasa.shared.nlu.training_data.loading import load_data

    holdout = load_data(str(ROOT / "tests" / "nlu" / "holdout.yml"))
    counts = Counter(_intent_of(m) for m in holdout.intent_examples)
    assert all(counts.get(i, 0) >= 12 for i in CONTRACT_INTENTS), counts
