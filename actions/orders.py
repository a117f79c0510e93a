"""Orders and after-sales: verification, look-ups, changes and tickets.

One form, `order_form`, collects what a request needs: the order number,
the phone tail (unless the customer is already verified), then the item,
reason, new address or confirmation that the request calls for. The rules
themselves live in kefu.shop.service / kefu.shop.rules.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    call,
    latest_entity,
    latest_intent,
    latest_text,
    metadata,
    order_service,
    records,
    shop_errors_answered,
)
from kefu.shop.formatting import (
    ORDER_STATUS_ZH,
    TICKET_KIND_ZH,
    TICKET_STATUS_ZH,
    china_time,
    mask_address,
    mask_name,
    mask_phone,
    yuan,
)
from kefu.shop.rules import REASONS, warranty_ends
from kefu.shop.service import MAX_TAIL_ATTEMPTS
from kefu.shop.views import OrderItemView, OrderView

logger = logging.getLogger(__name__)

REQUEST_OF_INTENT = {
    "order_status": "status",
    "track_shipment": "track",
    "cancel_order": "cancel",
    "change_address": "change_address",
    "request_return": "return",
    "request_exchange": "exchange",
    "request_refund": "refund",
    "request_repair": "repair",
    "aftersales_status": "aftersales_status",
    "payment_failed": "payment",
}
ITEM_REQUESTS = ("return", "exchange", "repair")
VERIFIED = "已验证"  # phone_tail value when a verified customer owns the order
# Slots that belong to one request and are cleared when it ends.
REQUEST_SLOTS = ("order_request", "phone_tail", "item", "reason", "new_address", "confirm", "refusal")
ORDINALS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5}


def clear_request() -> List[EventType]:
    return [SlotSet(slot, None) for slot in REQUEST_SLOTS] + [SlotSet("requested_slot", None)]


def items_text(order: OrderView) -> str:
    names = [item.product_name for item in order.items]
    return names[0] if len(names) == 1 else f"{names[0]}等{len(names)}件商品"


def find_item(order: OrderView, name: Optional[str]) -> Optional[OrderItemView]:
    if not name:
        return None
    for item in order.items:
        if item.product_name == name:
            return item
    text = name.strip().lower()
    match = re.search(r"第?([一二两三四五1-5])\s*[件个双台]?", text)
    if match and len(text) <= 4:
        index = ORDINALS[match.group(1)] - 1
        if 0 <= index < len(order.items):
            return order.items[index]
    for item in order.items:
        product = item.product_name.lower()
        if text and (text in product or product in text):
            return item
    return None


def canonical_reason(value: Optional[str]) -> Optional[str]:
    if not value:
        return None
    value = value.strip()[:100]
    return next((reason for reason in REASONS if reason == value), value)


def order_card(order: OrderView) -> Dict[str, Any]:
    """The chat page's order card (see docs/payloads.md)."""
    return {
        "type": "order_card",
        "order_no": order.order_no,
        "title": items_text(order),
        "status": ORDER_STATUS_ZH.get(order.status, order.status),
        "price": yuan(order.total_cents),
        "image": f"/static/products/order.svg",
        "button": {"title": "查物流", "payload": "/track_shipment"},
    }


class ActionStartOrderRequest(Action):
    """Remembers what the customer asked for and prepares the order form."""

    def name(self) -> Text:
        return "action_start_order_request"

    @shop_errors_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        intent = latest_intent(tracker)
        request = REQUEST_OF_INTENT.get(intent) or tracker.get_slot("order_request") or "status"
        if tracker.active_loop.get("name") == "order_form" and request == tracker.get_slot("order_request"):
            # "开不了机" while a repair asks for the reason reads as another repair
            # request; it is the answer.
            if tracker.get_slot("requested_slot") == "reason":
                return [SlotSet("reason", canonical_reason(latest_entity(tracker, "reason") or latest_text(tracker)))]
            return []
        events: List[EventType] = [SlotSet(slot, None) for slot in REQUEST_SLOTS if slot != "order_request"]
        events.append(SlotSet("order_request", request))
        reason = latest_entity(tracker, "reason")
        if reason and request in ("return", "exchange", "repair", "refund"):
            events.append(SlotSet("reason", canonical_reason(reason)))
        if tracker.get_slot("customer_id") is None:
            customer = await call(order_service().customer_from_metadata, metadata(tracker))
            if customer is not None:
                events.append(SlotSet("customer_id", float(customer.id)))
        order_no = latest_entity(tracker, "order_no") or tracker.get_slot("order_no")
        tracking_no = latest_entity(tracker, "tracking_no")
        if tracking_no and not latest_entity(tracker, "order_no"):
            order = await call(order_service().repository.find_order_by_tracking_no, tracking_no)
            if order is not None:
                order_no = order.order_no
                events.append(SlotSet("order_no", order_no))
        customer_id = next((e["value"] for e in events if e.get("name") == "customer_id"),
                           tracker.get_slot("customer_id"))
        if customer_id is not None and order_no:
            # A verified customer switching requests (退货 -> 换货) or asking about
            # one of their orders again is not asked for the phone tail again.
            order = await call(order_service().order_of_customer, tracker.sender_id, order_no, int(customer_id))
            if order is not None:
                events.append(SlotSet("phone_tail", VERIFIED))
                new_reason = canonical_reason(reason) if reason and request in ("return", "exchange", "repair", "refund") else None
                prechecked = await ValidateOrderForm()._after_verification(tracker, order, request=request,
                                                                           reason=new_reason)
                events += [SlotSet(name, value) for name, value in prechecked.items()]
        return events


class ValidateOrderForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_order_form"

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> List[Text]:
        if tracker.get_slot("lookup_locked"):
            return []
        slots = ["order_no", "phone_tail"]
        if tracker.get_slot("refusal") or not tracker.get_slot("phone_tail"):
            return slots
        request = tracker.get_slot("order_request")
        if request in ITEM_REQUESTS:
            slots += ["item", "reason", "confirm"]
        elif request == "change_address":
            slots += ["new_address", "confirm"]
        elif request in ("cancel", "refund"):
            slots += ["confirm"]
        return slots

    def _customer_id(self, tracker: Tracker, slots: Dict[Text, Any]) -> Optional[int]:
        value = slots.get("customer_id", tracker.get_slot("customer_id"))
        return int(value) if value is not None else None

    async def _after_verification(self, tracker: Tracker, order: OrderView, item_name: Optional[str] = None,
                                  request: Optional[str] = None, reason: Optional[str] = "slot"
                                  ) -> Dict[Text, Any]:
        """Fill the item when the order has one, and refuse early when no
        answer could make the request allowed."""
        request = request or tracker.get_slot("order_request")
        slots: Dict[Text, Any] = {}
        item = None
        if request in ITEM_REQUESTS:
            item = find_item(order, item_name or tracker.get_slot("item"))
            if item is None and len(order.items) == 1:
                item = order.items[0]
            if item is None:
                return slots
            slots["item"] = item.product_name
        kind = {"cancel": None, "change_address": None}.get(request, request)
        service = order_service()
        if request == "cancel":
            from kefu.shop.rules import can_cancel

            decision = can_cancel(order)
        elif request == "change_address":
            from kefu.shop.rules import can_change_address

            decision = can_change_address(order)
        elif kind in ("return", "exchange", "repair", "refund"):
            decision = await call(service.precheck, kind, order, item)
            reason = tracker.get_slot("reason") if reason == "slot" else reason
            if decision and reason and kind in ("return", "exchange"):
                decision = await call(service.decide, kind, order, item, reason)
        else:
            return slots
        if not decision:
            slots["refusal"] = decision.rule
        return slots

    async def validate_order_no(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                domain: DomainDict) -> Dict[Text, Any]:
        digits = re.search(r"(?<!\d)\d{16}(?!\d)", re.sub(r"[\s-]", "", str(value or "")))
        order_no = digits.group(0) if digits else ""
        if not order_no:
            dispatcher.utter_message(response="utter_order_no_invalid")
            return {"order_no": None}
        conversation = tracker.sender_id
        customer_id = self._customer_id(tracker, {})
        if customer_id is not None:
            order = await call(order_service().order_of_customer, conversation, order_no, customer_id)
        else:
            order = await call(order_service().find_order, conversation, order_no)
        if order is None:
            dispatcher.utter_message(response="utter_order_not_found", order_no=order_no)
            return {"order_no": None}
        slots: Dict[Text, Any] = {"order_no": order_no}
        if customer_id is not None:
            slots["phone_tail"] = VERIFIED
            slots.update(await self._after_verification(tracker, order))
        return slots

    async def validate_phone_tail(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                  domain: DomainDict) -> Dict[Text, Any]:
        if value == VERIFIED and tracker.get_slot("customer_id") is not None:
            return {"phone_tail": VERIFIED}
        order_no = tracker.get_slot("order_no")
        service = order_service()
        order = await call(service.find_order, tracker.sender_id, order_no) if order_no else None
        if order is None:
            return {"phone_tail": None, "order_no": None}
        customer_id = await call(service.verify_phone_tail, tracker.sender_id, order, str(value or ""))
        if customer_id is None:
            failures = int(tracker.get_slot("tail_failures") or 0) + 1
            if failures >= MAX_TAIL_ATTEMPTS:
                logger.warning("conversation %s: order look-ups locked after %d wrong phone tails",
                               tracker.sender_id, failures)
                return {"phone_tail": None, "tail_failures": float(failures), "lookup_locked": True}
            dispatcher.utter_message(response="utter_wrong_phone_tail", attempts_left=MAX_TAIL_ATTEMPTS - failures)
            return {"phone_tail": None, "tail_failures": float(failures)}
        slots = {"phone_tail": str(value), "customer_id": float(customer_id), "tail_failures": 0.0}
        slots.update(await self._after_verification(tracker, order))
        return slots

    async def validate_item(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                            domain: DomainDict) -> Dict[Text, Any]:
        order = await self._verified_order(tracker)
        if order is None:
            return {"item": None}
        item = find_item(order, latest_entity(tracker, "product") or str(value or ""))
        if item is None:
            return {"item": None}
        return await self._after_verification(tracker, order, item.product_name)

    async def validate_reason(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                              domain: DomainDict) -> Dict[Text, Any]:
        reason = canonical_reason(latest_entity(tracker, "reason") or value)
        if not reason:
            return {"reason": None}
        request = tracker.get_slot("order_request")
        slots: Dict[Text, Any] = {"reason": reason}
        if request in ("return", "exchange"):
            order = await self._verified_order(tracker)
            if order is not None:
                item = find_item(order, tracker.get_slot("item"))
                decision = await call(order_service().decide, request, order, item, reason)
                if not decision:
                    slots["refusal"] = decision.rule
        return slots

    async def validate_new_address(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                   domain: DomainDict) -> Dict[Text, Any]:
        address = " ".join(str(value or "").split())
        if len(address) < 6 or len(address) > 200:
            dispatcher.utter_message(response="utter_rule_address_invalid")
            return {"new_address": None}
        return {"new_address": address}

    async def _verified_order(self, tracker: Tracker) -> Optional[OrderView]:
        customer_id = tracker.get_slot("customer_id")
        order_no = tracker.get_slot("order_no")
        if customer_id is None or not order_no:
            return None
        return await call(order_service().order_of_customer, tracker.sender_id, order_no, int(customer_id))


class ActionAskOrderNo(Action):
    """A verified customer picks from their recent orders; others type the number."""

    def name(self) -> Text:
        return "action_ask_order_no"

    @shop_errors_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        customer_id = tracker.get_slot("customer_id")
        if customer_id is None:
            dispatcher.utter_message(response="utter_ask_order_no")
            return []
        orders = await call(order_service().recent_orders, tracker.sender_id, int(customer_id), 5)
        if not orders:
            dispatcher.utter_message(response="utter_ask_order_no")
            return []
        buttons = [
            {"title": f"{o.order_no} {items_text(o)}（{ORDER_STATUS_ZH.get(o.status, o.status)}）",
             "payload": f'/inform{{"order_no": "{o.order_no}"}}'}
            for o in orders
        ]
        dispatcher.utter_message(response="utter_recent_orders", buttons=buttons)
        return []


class ActionAskItem(Action):
    def name(self) -> Text:
        return "action_ask_item"

    @shop_errors_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        order = await ValidateOrderForm()._verified_order(tracker)
        buttons = [
            {"title": item.product_name + (f"（{item.size}）" if item.size else ""),
             "payload": f'/inform{{"item": "{item.product_name}"}}'}
            for item in (order.items if order else ())
        ]
        dispatcher.utter_message(response="utter_ask_item", buttons=buttons)
        return []


class ActionAskConfirm(Action):
    def name(self) -> Text:
        return "action_ask_confirm"

    @shop_errors_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        order = await ValidateOrderForm()._verified_order(tracker)
        if order is None:
            dispatcher.utter_message(response="utter_ask_order_no")
            return []
        request = tracker.get_slot("order_request")
        values = dict(order_no=order.order_no, items=items_text(order), amount=yuan(order.total_cents))
        if request == "cancel":
            response = "utter_confirm_cancel_paid" if order.status == "paid" else "utter_confirm_cancel"
        elif request == "refund":
            response = "utter_confirm_cancel_paid"
        elif request == "change_address":
            response = "utter_confirm_change_address"
            values["address"] = tracker.get_slot("new_address")
        else:
            response = "utter_confirm_aftersales"
            values.update(kind=TICKET_KIND_ZH.get(request, request), product=tracker.get_slot("item") or "",
                          reason=tracker.get_slot("reason") or "")
        dispatcher.utter_message(response=response, **values)
        return []


class ActionCancelRequest(Action):
    """算了 / 不退了 in the middle of a request: end it cleanly."""

    def name(self) -> Text:
        return "action_cancel_request"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        dispatcher.utter_message(response="utter_request_cancelled")
        return [ActiveLoop(None)] + clear_request()


class ActionHandleOrderRequest(Action):
    """Carries out the request once the order form has what it needs."""

    def name(self) -> Text:
        return "action_handle_order_request"

    @shop_errors_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        events = clear_request()
        if tracker.get_slot("lookup_locked"):
            dispatcher.utter_message(response="utter_lookup_locked")
            return events + await handoff(dispatcher, tracker, "verification_locked")
        if tracker.get_slot("confirm") is False:
            dispatcher.utter_message(response="utter_request_cancelled")
            return events
        order = await ValidateOrderForm()._verified_order(tracker)
        if order is None:
            dispatcher.utter_message(response="utter_ask_order_no")
            return events
        request = tracker.get_slot("order_request") or "status"
        item = find_item(order, tracker.get_slot("item"))
        refusal = tracker.get_slot("refusal")
        if refusal:
            self._refuse(dispatcher, refusal, order, item)
            return events
        handler = getattr(self, f"_handle_{request}", None)
        if handler is None:
            logger.error("unknown order request %r", request)
            dispatcher.utter_message(response="utter_ask_rephrase")
            return events
        resolved = await handler(dispatcher, tracker, order, item)
        return events + ([SlotSet("resolved", True)] if resolved else [])

    @staticmethod
    def _refuse(dispatcher: CollectingDispatcher, rule: str, order: OrderView, item: Optional[OrderItemView]) -> None:
        ends = warranty_ends(order, item) if item else None
        dispatcher.utter_message(
            response=f"utter_rule_{rule}",
            order_no=order.order_no,
            status=ORDER_STATUS_ZH.get(order.status, order.status),
            product=item.product_name if item else items_text(order),
            warranty=item.warranty_months if item else "",
            warranty_end=china_time(ends, "%Y-%m-%d") if ends else "",
        )

    async def _handle_status(self, dispatcher, tracker, order: OrderView, item) -> bool:
        latest = await call(order_service().shipment_events, tracker.sender_id, order, 1)
        dispatcher.utter_message(
            response=f"utter_status_{order.status}",
            order_no=order.order_no, items=items_text(order), amount=yuan(order.total_cents),
            shipped_at=china_time(order.shipped_at), delivered_at=china_time(order.delivered_at),
            carrier=order.carrier or "", tracking_no=order.tracking_no or "",
            latest_event=f"{china_time(latest[0].happened_at)} {latest[0].description}" if latest else "暂无",
            json_message=order_card(order),
        )
        return True

    async def _handle_track(self, dispatcher, tracker, order: OrderView, item) -> bool:
        if not order.tracking_no:
            dispatcher.utter_message(response="utter_track_not_shipped", order_no=order.order_no,
                                     status=ORDER_STATUS_ZH.get(order.status, order.status))
            return True
        events = await call(order_service().shipment_events, tracker.sender_id, order, 3)
        lines = "\n".join(f"{china_time(e.happened_at)} {e.location}：{e.description}" for e in events) or "暂无"
        dispatcher.utter_message(response="utter_track_shipment", order_no=order.order_no, carrier=order.carrier,
                                 tracking_no=order.tracking_no, events=lines)
        return True

    async def _handle_cancel(self, dispatcher, tracker, order: OrderView, item) -> bool:
        outcome = await call(order_service().cancel, tracker.sender_id, order)
        if not outcome.decision:
            self._refuse(dispatcher, outcome.decision.rule, outcome.order or order, item)
            return False
        if outcome.ticket is not None:
            dispatcher.utter_message(response="utter_cancel_done_refund", order_no=order.order_no,
                                     amount=yuan(order.total_cents), ticket_no=outcome.ticket.ticket_no)
        else:
            dispatcher.utter_message(response="utter_cancel_done", order_no=order.order_no)
        return True

    async def _handle_change_address(self, dispatcher, tracker, order: OrderView, item) -> bool:
        outcome = await call(order_service().change_address, tracker.sender_id, order, tracker.get_slot("new_address"))
        if not outcome.decision:
            self._refuse(dispatcher, outcome.decision.rule, outcome.order or order, item)
            return False
        changed = outcome.order
        dispatcher.utter_message(response="utter_address_changed", order_no=changed.order_no,
                                 address=mask_address(changed.ship_address), name=mask_name(changed.ship_name),
                                 phone=mask_phone(changed.ship_phone))
        return True

    async def _aftersales(self, dispatcher, tracker, order: OrderView, item, kind: str) -> bool:
        outcome = await call(order_service().submit_aftersales, tracker.sender_id, kind, order, item,
                             tracker.get_slot("reason"))
        if not outcome.decision:
            self._refuse(dispatcher, outcome.decision.rule, outcome.order or order, item)
            return False
        ticket = outcome.ticket
        if kind == "refund" and outcome.order is not None and outcome.order.status == "refunding" and ticket:
            dispatcher.utter_message(response="utter_cancel_done_refund", order_no=order.order_no,
                                     amount=yuan(order.total_cents), ticket_no=ticket.ticket_no)
        elif outcome.ticket_created:
            dispatcher.utter_message(response="utter_ticket_created", kind=TICKET_KIND_ZH[kind],
                                     ticket_no=ticket.ticket_no)
        else:
            dispatcher.utter_message(response="utter_ticket_exists", kind=TICKET_KIND_ZH[ticket.kind],
                                     ticket_no=ticket.ticket_no, status=TICKET_STATUS_ZH.get(ticket.status, ticket.status))
        return True

    async def _handle_return(self, dispatcher, tracker, order, item) -> bool:
        return await self._aftersales(dispatcher, tracker, order, item, "return")

    async def _handle_exchange(self, dispatcher, tracker, order, item) -> bool:
        return await self._aftersales(dispatcher, tracker, order, item, "exchange")

    async def _handle_repair(self, dispatcher, tracker, order, item) -> bool:
        return await self._aftersales(dispatcher, tracker, order, item, "repair")

    async def _handle_refund(self, dispatcher, tracker, order, item) -> bool:
        return await self._aftersales(dispatcher, tracker, order, item, "refund")

    async def _handle_aftersales_status(self, dispatcher, tracker, order: OrderView, item) -> bool:
        tickets = await call(order_service().tickets, tracker.sender_id, order)
        if not tickets:
            dispatcher.utter_message(response="utter_no_tickets", order_no=order.order_no)
            return True
        lines = "\n".join(
            f"{t.ticket_no} {TICKET_KIND_ZH.get(t.kind, t.kind)}：{TICKET_STATUS_ZH.get(t.status, t.status)}"
            f"（{china_time(t.created_at, '%m-%d %H:%M')}提交）" for t in tickets[:5]
        )
        dispatcher.utter_message(response="utter_ticket_list", order_no=order.order_no, tickets=lines)
        return True

    async def _handle_payment(self, dispatcher, tracker, order: OrderView, item) -> bool:
        await self._handle_status(dispatcher, tracker, order, item)
        if order.status == "pending_payment":
            dispatcher.utter_message(response="utter_payment_unpaid_help")
        elif order.status == "cancelled":
            dispatcher.utter_message(response="utter_payment_closed")
        else:
            dispatcher.utter_message(response="utter_payment_paid_ok")
        return True


async def handoff(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str) -> List[EventType]:
    """Record a hand-off request and tell the customer what happens next."""
    from kefu.shop.formatting import CHINA_TZ
    from datetime import datetime

    from rasa_sdk.events import ConversationPaused

    from actions.common import console_store
    from kefu.console.store import within_service_hours

    request_id, ahead, created = await call(records().handoff, tracker.sender_id, reason)
    in_hours = within_service_hours(datetime.now(CHINA_TZ))
    console = console_store()
    if not created:
        dispatcher.utter_message(response="utter_handoff_already", queue=ahead)
    elif await call(console.console_in_use) and not (in_hours and await call(console.agents_available)):
        # Nobody can answer now: the customer leaves a message (留言). Rasa's
        # own pause keeps the bot from answering it; the console shows it as
        # a task until an agent takes it and hands the conversation back.
        dispatcher.utter_message(response="utter_handoff_leave_message")
        await call(console.mark_left_message, tracker.sender_id)
        return [SlotSet("handoff_reason", reason), ConversationPaused()]
    elif in_hours:
        dispatcher.utter_message(response="utter_handoff_queued", queue=ahead)
    else:
        dispatcher.utter_message(response="utter_handoff_after_hours")
    return [SlotSet("handoff_reason", reason)]


class ActionComplaint(Action):
    """Complaints are always accepted: a ticket, then a human agent."""

    def name(self) -> Text:
        return "action_complaint"

    @shop_errors_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        order = await ValidateOrderForm()._verified_order(tracker)
        customer_id = tracker.get_slot("customer_id")
        outcome = await call(order_service().complaint, tracker.sender_id,
                             int(customer_id) if customer_id is not None else None, order, latest_text(tracker))
        dispatcher.utter_message(response="utter_complaint_received", ticket_no=outcome.ticket.ticket_no)
        return await handoff(dispatcher, tracker, "complaint")
