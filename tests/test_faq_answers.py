"""FAQ answers edited by admins: the store (edits audited, a reset goes back
to the domain's text) and the Rasa server's response generator (the edited
text when there is one, the domain's otherwise and whenever the database
cannot be read, with a log line). The console's API: tests/test_faq_answers_e2e.py."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from sqlalchemy import select

from kefu.db.engine import ensure_schema, make_engine, session_scope
from kefu.db.models import AuditLog
from kefu.faq import FaqAnswerStore, domain_faq_answers

EDITED = "📦 新运费规则：全场包邮，当天发货。"


@pytest.fixture()
def faq_store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    ensure_schema(engine)
    return FaqAnswerStore(engine)


def generator(store):
    from rasa.shared.core.domain import Domain

    from kefu.faq_nlg import FaqAnswerGenerator

    responses = {f"utter_faq/{key}": [{"text": default.text}] for key, default in domain_faq_answers().items()}
    responses["utter_greet"] = [{"text": "您好"}]
    return FaqAnswerGenerator(domain=Domain.from_dict({"responses": responses}), store=store)


def say(nlg, response: str) -> str:
    from rasa.shared.core.trackers import DialogueStateTracker

    return asyncio.run(nlg.generate(response, DialogueStateTracker("faq-test", []), "rest"))["text"]


def test_the_domain_lists_every_faq_answer_with_its_label():
    answers = domain_faq_answers()
    assert set(answers) == {"shipping_policy", "return_policy", "invoice", "payment_methods"}
    assert answers["shipping_policy"].label == "运费政策"
    assert answers["invoice"].text.startswith("🧾 发票说明")


def test_edits_are_audited_and_a_reset_goes_back_to_the_domain(faq_store):
    assert faq_store.text_for("shipping_policy") is None
    faq_store.save("shipping_policy", EDITED, staff_id=7)
    faq_store.save("shipping_policy", EDITED + "！", staff_id=8)
    assert faq_store.text_for("shipping_policy") == EDITED + "！"
    assert set(faq_store.edited()) == {"shipping_policy"}
    assert faq_store.reset("shipping_policy", staff_id=7) is True
    assert faq_store.reset("shipping_policy", staff_id=7) is False  # nothing left to undo: no audit row
    assert faq_store.text_for("shipping_policy") is None
    with session_scope(faq_store.engine) as s:
        audit = [(a.action, a.outcome, a.staff_id) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert audit == [
        ("faq_answer_edit", "shipping_policy", 7),
        ("faq_answer_edit", "shipping_policy", 8),
        ("faq_answer_reset", "shipping_policy", 7),
    ]


def test_the_bot_gives_the_edited_text_and_only_for_that_answer(faq_store):
    nlg = generator(faq_store)
    default = domain_faq_answers()["shipping_policy"].text
    assert say(nlg, "utter_faq/shipping_policy") == default
    faq_store.save("shipping_policy", EDITED, staff_id=None)
    assert say(nlg, "utter_faq/shipping_policy") == EDITED
    assert say(nlg, "utter_faq/invoice") == domain_faq_answers()["invoice"].text
    assert say(nlg, "utter_greet") == "您好"
    faq_store.reset("shipping_policy", staff_id=None)
    assert say(nlg, "utter_faq/shipping_policy") == default


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/empty.sqlite3", "postgresql://kefu@127.0.0.1:1/nobody"])
def test_database_unreadable_the_domains_text_and_a_log_line(tmp_path, caplog, url):
    # A database without the table (an unmigrated shop), or no server at all.
    unreadable = FaqAnswerStore(make_engine(url.format(tmp=tmp_path)))
    with caplog.at_level(logging.ERROR, logger="kefu.faq_nlg"):
        assert say(generator(unreadable), "utter_faq/invoice") == domain_faq_answers()["invoice"].text
    assert "FAQ answer invoice: edited text not read, the domain's is given" in caplog.text


def test_a_slow_database_does_not_hold_the_answer(faq_store, monkeypatch, caplog):
    import kefu.faq_nlg

    class Slow(FaqAnswerStore):
        def text_for(self, key: str) -> str | None:
            time.sleep(0.5)
            return EDITED

    from rasa.shared.core.trackers import DialogueStateTracker

    monkeypatch.setattr(kefu.faq_nlg, "READ_TIMEOUT_SECONDS", 0.05)
    nlg = generator(Slow(faq_store.engine))

    async def answer() -> tuple[str, float]:
        began = time.perf_counter()
        message = await nlg.generate("utter_faq/shipping_policy", DialogueStateTracker("slow", []), "rest")
        return message["text"], time.perf_counter() - began

    with caplog.at_level(logging.ERROR, logger="kefu.faq_nlg"):
        text, waited = asyncio.run(answer())
    assert text == domain_faq_answers()["shipping_policy"].text
    assert waited < 0.45  # the read goes on in its thread; the turn does not wait for it
    assert "TimeoutError" in caplog.text
