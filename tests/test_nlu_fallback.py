"""The fallback's two guesses (actions.conversation.suggested_intents) from
a parse result and the real domain, without a model."""

from __future__ import annotations

from pathlib import Path

import yaml

from actions.conversation import suggested_intents

ROOT = Path(__file__).resolve().parents[1]


def _domain() -> dict:
    responses: dict = {}
    for path in (ROOT / "domain").glob("*.yml"):
        responses.update((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("responses") or {})
    return {"responses": responses}


def _parse(ranking: list[str], faq_key: str | None = None) -> dict:
    parse = {
        "intent": {"name": "nlu_fallback", "confidence": 0.4},
        "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.4}]
        + [{"name": name, "confidence": 0.3 - i * 0.05} for i, name in enumerate(ranking)],
    }
    if faq_key:
        parse["response_selector"] = {"faq": {"response": {"intent_response_key": faq_key}}}
    return parse


def test_the_two_most_likely_requests_are_offered_with_chinese_labels():
    suggestions = suggested_intents(_parse(["track_shipment", "order_status", "cancel_order"]), _domain())
    assert [(s["label"], s["payload"]) for s in suggestions] == [
        ("查物流", "/track_shipment"),
        ("查订单", "/order_status"),
    ]


def test_a_faq_guess_is_its_sub_question_sent_as_text():
    suggestions = suggested_intents(_parse(["faq", "track_shipment"], "faq/shipping_policy"), _domain())
    assert [(s["intent"], s["label"], s["payload"]) for s in suggestions] == [
        ("faq/shipping_policy", "运费政策", "运费政策"),
        ("track_shipment", "查物流", "/track_shipment"),
    ]


def test_yes_no_and_faq_without_a_sub_question_are_not_offered():
    suggestions = suggested_intents(_parse(["affirm", "faq", "deny", "complaint", "human_handoff"]), _domain())
    assert [s["intent"] for s in suggestions] == ["complaint", "human_handoff"]


def test_every_intent_that_can_be_offered_has_a_label():
    intents = set()
    for path in (ROOT / "domain").glob("*.yml"):
        intents |= set((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("intents") or [])
    from actions.conversation import NOT_SUGGESTED

    labelled = {
        name[len("utter_intent_label_") :] for name in _domain()["responses"] if name.startswith("utter_intent_label_")
    }
    missing = {i for i in intents - NOT_SUGGESTED - {"faq"} if i not in labelled}
    assert not missing, missing
