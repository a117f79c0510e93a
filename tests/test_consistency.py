"""Lists that live in several places (the request kinds, the intents that are
not an answer to the order form, the slots carried into a new session) are
kept in step here: this fails when one copy drifts."""

from __future__ import annotations

import yaml

from actions.conversation import SESSION_SLOTS_KEPT
from kefu.db.models import TICKET_KINDS
from kefu.shop.requests import ORDER_REQUEST_INTENTS, OrderRequest, TicketKind
from kefu.shop.service import AFTERSALES_KINDS
from kefu.testing import ROOT

# Free-text answers (an item, a reason, an address) are often read as these.
# unclear reaches the form as nlu_fallback (UnclearAsFallback); a free-text
# answer such as a reason is often read as it.
ANSWER_INTENTS = {"inform", "out_of_scope", "rate_service", "nlu_fallback", "unclear"}


def load(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def domain() -> dict:
    merged: dict = {"intents": [], "slots": {}}
    for path in sorted((ROOT / "domain").glob("*.yml")):
        part = yaml.safe_load(path.read_text(encoding="utf-8"))
        merged["intents"] += [i if isinstance(i, str) else next(iter(i)) for i in part.get("intents", [])]
        merged["slots"].update(part.get("slots") or {})
        merged.setdefault("session_config", part.get("session_config"))
        if part.get("session_config"):
            merged["session_config"] = part["session_config"]
    return merged


def rule_intents(rule_name: str) -> list[str]:
    rule = next(r for r in load("data/rules/orders.yml")["rules"] if r["rule"] == rule_name)
    return [step["intent"] for step in rule["steps"][0]["or"]]


def test_request_kinds_are_the_same_everywhere():
    assert set(ORDER_REQUEST_INTENTS) <= set(domain()["intents"])
    assert domain()["slots"]["order_request"]["values"] == [r.value for r in OrderRequest]
    assert rule_intents("an order request starts the order form") == [*ORDER_REQUEST_INTENTS, "inform"]
    assert rule_intents("switching request (return -> exchange) keeps the order and verification") == list(
        ORDER_REQUEST_INTENTS
    )
    assert TICKET_KINDS == AFTERSALES_KINDS == tuple(k.value for k in TicketKind)
    assert {r.ticket_kind for r in OrderRequest if r.ticket_kind} == set(TicketKind) - {TicketKind.COMPLAINT}


def test_the_order_form_takes_every_intent_but_the_answers_as_not_an_answer():
    intents = set(domain()["intents"]) | {"nlu_fallback"}
    for slot in ("item", "reason", "new_address"):
        from_text = [m for m in domain()["slots"][slot]["mappings"] if m["type"] == "from_text"]
        assert len(from_text) == 1, slot
        assert set(from_text[0]["not_intent"]) == intents - ANSWER_INTENTS, slot


def test_new_sessions_carry_over_only_what_the_session_start_action_keeps():
    assert domain()["session_config"]["carry_over_slots_to_new_session"] is False
    assert set(SESSION_SLOTS_KEPT) <= set(domain()["slots"])
    assert not {"customer_id", "verified_order"} & set(SESSION_SLOTS_KEPT)
