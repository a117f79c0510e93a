"""Issue 12 on the trained model: a request wrapped in a greeting or a
thank-you is read as the request, a thank-you with a sentence around it is a
thank-you, the real-style held-out set (from the `rasa test nlu` run that
`make test` does before pytest), and the fallback's faq buttons."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[1]
# A floor against regressions under the measured 0.969 (README, "Measured
# quality"), where a retraining's noise cannot fail the suite.
REALSTYLE_ACCURACY = 0.94


@pytest.fixture(scope="module")
def parse(trained_model):
    import asyncio

    from rasa.core.agent import Agent

    agent = Agent.load(str(trained_model))
    return lambda text: asyncio.run(agent.parse_message(text))


@pytest.mark.parametrize(
    "text, intent",
    [
        ("你好,我想查一下订单", "order_status"),
        ("你好，我想退货，需要怎么操作?", "request_return"),
        ("在吗 快递到哪了", "track_shipment"),
        ("亲 我要退款 谢谢", "request_refund"),
        ("帮我取消订单谢谢", "cancel_order"),
        ("你好", "greet"),
        ("在吗亲", "greet"),
    ],
)
def test_a_request_wrapped_in_pleasantries_is_read_as_the_request(parse, text, intent):
    assert parse(text)["intent"]["name"] == intent


@pytest.mark.parametrize(
    "text",
    [
        "好的 谢谢你的耐心解答",
        "明白了 非常感谢你的帮助",
        "谢谢你帮我查 这下放心了",
        "好的好的 太感谢了",
    ],
)
def test_a_thank_you_with_a_sentence_around_it_is_a_thank_you(parse, text):
    assert parse(text)["intent"]["name"] == "thank"


def test_each_faq_button_of_the_fallback_reads_as_its_own_question(parse):
    """action_fallback sends a faq guess's label back as text (a payload
    `/faq` would carry no sub-question)."""
    responses = {}
    for path in (ROOT / "domain").glob("*.yml"):
        responses.update((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("responses") or {})
    labels = {
        name[len("utter_intent_label_faq_") :]: variants[0]["text"]
        for name, variants in responses.items()
        if name.startswith("utter_intent_label_faq_")
    }
    assert set(labels) == {"shipping_policy", "return_policy", "invoice", "payment_methods"}
    for key, label in labels.items():
        result = parse(label)
        assert result["intent"]["name"] == "faq", (label, result["intent"])
        assert result["response_selector"]["faq"]["response"]["intent_response_key"] == f"faq/{key}", label


def test_real_style_held_out_accuracy():
    path = os.environ.get("KEFU_NLU_REALSTYLE_RESULTS")
    if not path or not Path(path, "intent_report.json").exists():
        pytest.skip("no `rasa test nlu` results for tests/nlu/holdout_realstyle.yml: run `make test`")
    report = json.loads(Path(path, "intent_report.json").read_text(encoding="utf-8"))
    assert report["accuracy"] >= REALSTYLE_ACCURACY, report["accuracy"]


# A floor under the measured 0.867 at threshold 0.10 (config.yml; 0.578
# before the `unclear` intent, at 0.56), where a retraining's noise cannot
# fail the suite.
UNCLEAR_FALLBACK_RATE = 0.80


def test_held_out_messages_with_no_request_fall_back(parse):
    """tests/nlu/holdout_unclear.yml: vague fragments, references to what the
    bot cannot see, requests that never arrive, unserved requests; never
    trained on. The threshold is low, so these must be caught by the
    `unclear` intent, not by low confidence."""
    document = yaml.safe_load((ROOT / "tests" / "nlu" / "holdout_unclear.yml").read_text(encoding="utf-8"))
    texts = [
        line[2:].strip()
        for block in document["nlu"]
        for line in block["examples"].splitlines()
        if line.startswith("- ")
    ]
    answered = [text for text in texts if parse(text)["intent"]["name"] != "nlu_fallback"]
    rate = 1 - len(answered) / len(texts)
    assert len(texts) >= 80
    assert rate >= UNCLEAR_FALLBACK_RATE, (rate, answered)
