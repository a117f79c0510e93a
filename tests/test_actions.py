"""The order actions, run as the action server runs them (a Tracker and a
CollectingDispatcher built here, as rasa-sdk's own tests do), on the
in-memory shop: no model, no servers, a few seconds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import Services, use_services
from actions.orders import (
    VERIFIED,
    ActionAskOrderNo,
    ActionHandleOrderRequest,
    ActionStartOrderRequest,
    ValidateOrderForm,
)
from kefu.shop.demo import demo_rows, showcase
from kefu.shop.memory import InMemoryShopRepository
from kefu.shop.service import ORDER_LOCK_FAILURES
from kefu.testing import ROOT

CASES = showcase()
DOMAIN = {
    "forms": {"order_form": {"required_slots": ["order_no", "phone_tail"]}},
    "slots": {
        name: spec
        for part in ("orders", "social", "products")
        for name, spec in (yaml.safe_load((ROOT / "domain" / f"{part}.yml").read_text()).get("slots") or {}).items()
    },
}


@pytest.fixture()
def shop():
    repository = InMemoryShopRepository.from_rows(demo_rows(orders=50))
    use_services(Services.over(repository))
    yield repository
    use_services(None)


def tracker(
    text: str = "",
    intent: str = "",
    entities: dict[str, Any] | None = None,
    slots: dict | None = None,
    *,
    set_now: dict | None = None,
    form: bool = False,
    sender: str = "customer-1",
) -> Tracker:
    """A tracker whose latest message is `text`; `set_now` are the slot
    candidates the form extracted this turn (what the validation sees)."""
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.99},
        "entities": [{"entity": k, "value": v} for k, v in (entities or {}).items()],
    }
    events: list[dict] = [{"event": "user", "text": text, "parse_data": latest}]
    events += [{"event": "slot", "name": k, "value": v} for k, v in (set_now or {}).items()]
    all_slots = {**(slots or {}), **(set_now or {})}
    return Tracker(
        sender, all_slots, latest, events, False, None, {"name": "order_form"} if form else {}, "action_listen"
    )


def run(action, t: Tracker) -> tuple[dict, list[str], CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, t, DOMAIN))
    slots = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
    return slots, [m.get("response") for m in dispatcher.messages], dispatcher


def test_tracking_number_and_ship_tail_open_that_order_only(shop):
    case = CASES["shipped"]
    order = shop.find_order(case["order_no"])
    slots, said, _ = run(
        ActionStartOrderRequest(),
        tracker(f"快递单号{order.tracking_no}到哪了", "track_shipment", {"tracking_no": order.tracking_no}),
    )
    assert slots["order_no"] == order.order_no and slots.get("phone_tail") is None and said == []
    state = {"order_request": "track", "order_no": order.order_no}
    slots, said, _ = run(
        ValidateOrderForm(),
        tracker(case["phone_tail"], "inform", slots=state, form=True, set_now={"phone_tail": case["phone_tail"]}),
    )
    assert slots["verified_order"] == order.order_no and "customer_id" not in slots
    state.update(slots)
    # 我的订单: the verified order again, never the customer's list of orders.
    slots, said, _ = run(ActionStartOrderRequest(), tracker("我的订单", "order_status", slots=state))
    assert slots["order_no"] == order.order_no and slots["phone_tail"] == VERIFIED
    _, said, dispatcher = run(
        ActionAskOrderNo(), tracker("我的订单", "order_status", slots={**state, "order_no": None})
    )
    assert said == ["utter_ask_order_no"] and not any(m.get("buttons") for m in dispatcher.messages)
    # Another order of the same customer needs its own tail.
    other = CASES["delivered_2d"]["order_no"]
    slots, said, _ = run(
        ValidateOrderForm(), tracker(other, "inform", slots=state, form=True, set_now={"order_no": other})
    )
    assert slots == {"order_no": other, "phone_tail": None} and said == []


def test_logged_in_customer_picks_from_their_orders(shop):
    case = CASES["shipped"]
    owner = shop.find_order(case["order_no"]).customer_id
    _, said, dispatcher = run(
        ActionAskOrderNo(), tracker("查订单", "order_status", slots={"customer_id": float(owner)})
    )
    assert said == ["utter_recent_orders"]
    assert all(
        shop.find_order(b["payload"].split('"')[3]).customer_id == owner for b in dispatcher.messages[0]["buttons"]
    )


def test_database_down_mid_form_gets_the_apology(shop):
    case = CASES["shipped"]
    shop.available = False
    state = {"order_request": "status", "order_no": case["order_no"]}
    slots, said, _ = run(
        ValidateOrderForm(),
        tracker(case["phone_tail"], "inform", slots=state, form=True, set_now={"phone_tail": case["phone_tail"]}),
    )
    assert said == ["utter_service_unavailable"] and slots == {}
    _, said, _ = run(
        ActionStartOrderRequest(),
        tracker(
            f"{case['order_no']}要退货", "request_return", {"order_no": case["order_no"]}, slots={"customer_id": 1.0}
        ),
    )
    assert said == ["utter_service_unavailable"]


def test_database_server_down_gets_the_apology_within_the_deadline():
    import time

    from kefu.db.engine import make_engine
    from kefu.shop.repository import SqlShopRepository

    use_services(Services.over(SqlShopRepository(make_engine("postgresql://postgres@127.0.0.1:1/none"))))
    try:
        started = time.monotonic()
        state = {"order_request": "status", "order_no": CASES["shipped"]["order_no"]}
        slots, said, _ = run(
            ValidateOrderForm(), tracker("8000", "inform", slots=state, form=True, set_now={"phone_tail": "8000"})
        )
        assert said == ["utter_service_unavailable"] and time.monotonic() - started < 10
    finally:
        use_services(None)


def test_an_unexpected_error_is_answered_too(shop, monkeypatch):
    monkeypatch.setattr(shop, "find_order", lambda order_no: 1 / 0)
    _, said, _ = run(
        ActionStartOrderRequest(),
        tracker(
            f"订单{CASES['shipped']['order_no']}",
            "order_status",
            {"order_no": CASES["shipped"]["order_no"]},
            slots={"customer_id": 1.0},
        ),
    )
    assert said == ["utter_service_unavailable"]


def test_order_locked_by_guesses_is_refused_and_handed_to_a_human(shop):
    case = CASES["delivered_2d"]
    order = shop.find_order(case["order_no"])
    for sender in range(ORDER_LOCK_FAILURES):
        state = {"order_request": "status", "order_no": order.order_no}
        run(
            ValidateOrderForm(),
            tracker(
                "0000", "inform", slots=state, form=True, set_now={"phone_tail": "0000"}, sender=f"guesser-{sender}"
            ),
        )
    state = {"order_request": "status", "order_no": order.order_no}
    slots, said, _ = run(
        ValidateOrderForm(),
        tracker(case["phone_tail"], "inform", slots=state, form=True, set_now={"phone_tail": case["phone_tail"]}),
    )
    assert slots["refusal"] == "order_locked" and "verified_order" not in slots
    _, said, _ = run(ActionHandleOrderRequest(), tracker(case["phone_tail"], "inform", slots={**state, **slots}))
    assert said[0] == "utter_order_lookups_locked" and said[1].startswith("utter_handoff")


def test_a_request_refused_at_the_pre_check_is_audited_with_its_rule(shop):
    case = CASES["delivered_10d"]
    state = {
        "order_request": "return",
        "order_no": case["order_no"],
        "verified_order": case["order_no"],
        "phone_tail": case["phone_tail"],
    }
    slots, _, _ = run(
        ValidateOrderForm(),
        tracker(case["phone_tail"], "inform", slots=state, form=True, set_now={"phone_tail": case["phone_tail"]}),
    )
    assert slots["refusal"] == "return_window"
    _, said, _ = run(ActionHandleOrderRequest(), tracker("", "inform", slots={**state, **slots}))
    assert said == ["utter_rule_return_window"]
    # Counted once, by rule, as a refused submission is (the dashboard's 被规则拒绝).
    refused = [(a["action"], a["outcome"]) for a in shop.rows.audit_log if a["outcome"].startswith("refused:")]
    assert refused == [("request_return", "refused:return_window")]


def test_a_cancellation_is_carried_out_for_the_verified_order(shop):
    case = CASES["paid_unshipped"]
    state = {
        "order_request": "cancel",
        "order_no": case["order_no"],
        "verified_order": case["order_no"],
        "phone_tail": case["phone_tail"],
        "confirm": True,
    }
    slots, said, _ = run(ActionHandleOrderRequest(), tracker("确认", "affirm", slots=state))
    assert said == ["utter_cancel_done_refund"] and slots["resolved"] is True
    assert shop.find_order(case["order_no"]).status == "refunding"


def test_a_second_conversation_returning_the_same_item_is_told_the_open_ticket(shop):
    case = CASES["delivered_2d"]
    state = {
        "order_request": "return",
        "order_no": case["order_no"],
        "verified_order": case["order_no"],
        "phone_tail": case["phone_tail"],
        "reason": "不喜欢",
        "confirm": True,
    }
    said_by = {}
    for sender in ("customer-phone", "customer-computer"):
        _, said, dispatcher = run(ActionHandleOrderRequest(), tracker("确认", "affirm", slots=state, sender=sender))
        said_by[sender] = said, dispatcher.messages[0]
    first, second = said_by["customer-phone"], said_by["customer-computer"]
    assert first[0] == ["utter_ticket_created"] and second[0] == ["utter_ticket_exists"]
    assert second[1]["ticket_no"] == first[1]["ticket_no"] and second[1]["status"] == "已受理，待审核"


def test_kefu_repository_selects_a_shops_own_implementation(monkeypatch):
    from kefu.shop.repository import get_repository

    monkeypatch.setenv("KEFU_REPOSITORY", "kefu.shop.memory:InMemoryShopRepository")
    get_repository.cache_clear()
    try:
        assert isinstance(get_repository(), InMemoryShopRepository)
        monkeypatch.setenv("KEFU_REPOSITORY", "kefu.shop.views:OrderView")
        get_repository.cache_clear()
        with pytest.raises(TypeError):
            get_repository()
    finally:
        get_repository.cache_clear()
