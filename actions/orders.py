"""Orders and after-sales: verification, look-ups, changes and tickets.

One form, `order_form`, collects what a request needs: the order number,
the phone tail (unless the channel vouched for the order's owner, or this
order was verified earlier in the conversation), then the item, reason, new
address or confirmation that the request calls for. The actions translate
between the dialogue and `kefu.shop.service.OrderService`, which owns the
rules, the audit rows and the transactions.

Who may see what: a channel-proven identity (`customer_id`) opens the
customer's orders; a right phone tail opens that one order
(`verified_order`), nothing else of the account.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, ConversationPaused, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    call,
    failures_answered,
    latest_entity,
    latest_intent,
    latest_text,
    metadata,
    order_service,
    records,
    services,
)
from kefu.console.store import within_service_hours
from kefu.shop.formatting import (
    CHINA_TZ,
    ORDER_STATUS_ZH,
    TICKET_KIND_ZH,
    TICKET_STATUS_ZH,
    china_time,
    mask_address,
    mask_name,
    mask_phone,
    yuan,
)
from kefu.shop.requests import OrderRequest
from kefu.shop.rules import warranty_ends
from kefu.shop.service import MAX_TAIL_ATTEMPTS, Verification, canonical_reason, match_item
from kefu.shop.views import OrderItemView, OrderView

logger = logging.getLogger(__name__)

VERIFIED = "已验证"  # phone_tail value when the order is already open to this conversation
ORDER_LOCKED = "order_locked"  # refusal: too many wrong tails on this order, from any conversation
# Slots that belong to one request and are cleared when it ends.
REQUEST_SLOTS = ("order_request", "phone_tail", "item", "reason", "new_address", "confirm", "refusal")


def clear_request() -> list[EventType]:
    return [SlotSet(slot, None) for slot in REQUEST_SLOTS] + [SlotSet("requested_slot", None)]


def items_text(order: OrderView) -> str:
    names = [item.product_name for item in order.items]
    return names[0] if len(names) == 1 else f"{names[0]}等{len(names)}件商品"


def order_card(order: OrderView) -> dict[str, Any]:
    """The chat page's order card (docs/payloads.md)."""
    return {
        "type": "order_card",
        "order_no": order.order_no,
        "title": items_text(order),
        "status": ORDER_STATUS_ZH.get(order.status, order.status),
        "price": yuan(order.total_cents),
        "image": "/static/products/order.svg",
        "button": {"title": "查物流", "payload": "/track_shipment"},
    }


def current_request(tracker: Tracker) -> OrderRequest:
    return OrderRequest.parse(tracker.get_slot("order_request")) or OrderRequest.STATUS


def customer_id_of(tracker: Tracker, slots: dict[str, Any] | None = None) -> int | None:
    value = (slots or {}).get("customer_id", tracker.get_slot("customer_id"))
    return int(value) if value is not None else None


async def open_order(
    tracker: Tracker, order_no: str | None = None, slots: dict[str, Any] | None = None
) -> OrderView | None:
    """The order of this request if this conversation may see it (logged-in
    owner, or verified here by its phone tail); None otherwise."""
    slots = slots or {}
    order_no = order_no or slots.get("order_no") or tracker.get_slot("order_no")
    verified = slots.get("verified_order", tracker.get_slot("verified_order"))
    return await call(
        order_service().accessible_order,
        tracker.sender_id,
        order_no,
        customer_id=customer_id_of(tracker, slots),
        verified_order_no=verified,
    )


async def prepared_slots(
    tracker: Tracker, order: OrderView, request: OrderRequest, item_name: str | None = None, reason: str | None = None
) -> dict[str, Any]:
    prepared = await call(order_service().prepare, request, order, item_name, reason)
    slots: dict[str, Any] = {}
    if prepared.item is not None and request.needs_item:
        slots["item"] = prepared.item.product_name
    if prepared.refusal:
        slots["refusal"] = prepared.refusal
    return slots


class ActionStartOrderRequest(Action):
    """Remembers what the customer asked for and prepares the order form."""

    def name(self) -> str:
        return "action_start_order_request"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        request = OrderRequest.of_intent(latest_intent(tracker)) or current_request(tracker)
        if tracker.active_loop.get("name") == "order_form" and request.value == tracker.get_slot("order_request"):
            # "开不了机" while a repair asks for the reason reads as another repair
            # request; it is the answer.
            if tracker.get_slot("requested_slot") == "reason":
                return [SlotSet("reason", canonical_reason(latest_entity(tracker, "reason") or latest_text(tracker)))]
            return []
        slots: dict[str, Any] = {slot: None for slot in REQUEST_SLOTS if slot != "order_request"}
        slots["order_request"] = request.value
        reason = canonical_reason(latest_entity(tracker, "reason")) if request.takes_reason else None
        if reason:
            slots["reason"] = reason
        if tracker.get_slot("customer_id") is None:
            customer = await call(order_service().customer_from_metadata, metadata(tracker), tracker.sender_id)
            if customer is not None:
                slots["customer_id"] = float(customer.id)
        order_no = latest_entity(tracker, "order_no")
        tracking_no = latest_entity(tracker, "tracking_no")
        if tracking_no and not order_no:
            # A parcel label's tracking number finds the order; the ship
            # phone's tail is still asked before anything is shown.
            order = await call(order_service().find_order_by_tracking_no, tracker.sender_id, tracking_no)
            if order is not None:
                order_no = order.order_no
        order_no = order_no or tracker.get_slot("order_no")
        if order_no:
            slots["order_no"] = order_no
            # A verified customer switching requests (退货 -> 换货) or asking about
            # the same order again is not asked for the phone tail again.
            order = await open_order(tracker, order_no, slots)
            if order is not None:
                slots["phone_tail"] = VERIFIED
                slots.update(await prepared_slots(tracker, order, request, reason=reason))
        return [SlotSet(name, value) for name, value in slots.items()]


class ValidateOrderForm(FormValidationAction):
    def name(self) -> str:
        return "validate_order_form"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        return await super().run(dispatcher, tracker, domain)

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        if tracker.get_slot("lookup_locked"):
            return []
        slots = ["order_no", "phone_tail"]
        if tracker.get_slot("refusal") or not tracker.get_slot("phone_tail"):
            return slots
        return slots + current_request(tracker).form_slots()

    async def validate_order_no(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        digits = re.search(r"(?<!\d)\d{16}(?!\d)", re.sub(r"[\s-]", "", str(value or "")))
        order_no = digits.group(0) if digits else ""
        if not order_no:
            dispatcher.utter_message(response="utter_order_no_invalid")
            return {"order_no": None}
        order = await open_order(tracker, order_no)
        if order is not None:
            slots: dict[str, Any] = {"order_no": order_no, "phone_tail": VERIFIED}
            slots.update(await prepared_slots(tracker, order, current_request(tracker)))
            return slots
        exists = (
            customer_id_of(tracker) is None
            and await call(order_service().find_order, tracker.sender_id, order_no) is not None
        )
        if exists:
            return {"order_no": order_no, "phone_tail": None}
        # Echoes only the number the customer typed, and says the same for an
        # order that does not exist and one of another customer.
        dispatcher.utter_message(response="utter_order_not_found", order_no=order_no)
        return {"order_no": None}

    async def validate_phone_tail(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value == VERIFIED and await open_order(tracker) is not None:
            return {"phone_tail": VERIFIED}
        order_no = tracker.get_slot("order_no")
        service = order_service()
        order = await call(service.find_order, tracker.sender_id, order_no) if order_no else None
        if order is None:
            return {"phone_tail": None, "order_no": None}
        verification = await call(service.verify_phone_tail, tracker.sender_id, order, str(value or "").strip())
        if verification is Verification.LOCKED:
            return {"phone_tail": "-", "refusal": ORDER_LOCKED}
        if verification is Verification.WRONG_TAIL:
            failures = int(tracker.get_slot("tail_failures") or 0) + 1
            if failures >= MAX_TAIL_ATTEMPTS:
                logger.warning(
                    "conversation %s: order look-ups locked after %d wrong phone tails", tracker.sender_id, failures
                )
                return {"phone_tail": None, "tail_failures": float(failures), "lookup_locked": True}
            dispatcher.utter_message(response="utter_wrong_phone_tail", attempts_left=MAX_TAIL_ATTEMPTS - failures)
            return {"phone_tail": None, "tail_failures": float(failures)}
        slots: dict[str, Any] = {"phone_tail": str(value), "verified_order": order.order_no, "tail_failures": 0.0}
        slots.update(await prepared_slots(tracker, order, current_request(tracker), reason=tracker.get_slot("reason")))
        return slots

    async def validate_item(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        order = await open_order(tracker)
        item = match_item(order, latest_entity(tracker, "product") or str(value or "")) if order else None
        if order is None or item is None:
            return {"item": None}
        return {
            "item": item.product_name,
            **await prepared_slots(
                tracker, order, current_request(tracker), item.product_name, tracker.get_slot("reason")
            ),
        }

    async def validate_reason(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        reason = canonical_reason(latest_entity(tracker, "reason") or value)
        if not reason:
            return {"reason": None}
        slots: dict[str, Any] = {"reason": reason}
        order = await open_order(tracker)
        if order is not None:
            prepared = await prepared_slots(tracker, order, current_request(tracker), tracker.get_slot("item"), reason)
            if prepared.get("refusal"):
                slots["refusal"] = prepared["refusal"]
        return slots

    async def validate_new_address(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        address = " ".join(str(value or "").split())
        if len(address) < 6 or len(address) > 200:
            dispatcher.utter_message(response="utter_rule_address_invalid")
            return {"new_address": None}
        return {"new_address": address}


class ActionAskOrderNo(Action):
    """A logged-in customer picks from their recent orders; others type the number."""

    def name(self) -> str:
        return "action_ask_order_no"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        customer_id = customer_id_of(tracker)
        orders = await call(order_service().recent_orders, tracker.sender_id, customer_id, 5) if customer_id else []
        if not orders:
            dispatcher.utter_message(response="utter_ask_order_no")
            return []
        buttons = [
            {
                "title": f"{o.order_no} {items_text(o)}（{ORDER_STATUS_ZH.get(o.status, o.status)}）",
                "payload": f'/inform{{"order_no": "{o.order_no}"}}',
            }
            for o in orders
        ]
        dispatcher.utter_message(response="utter_recent_orders", buttons=buttons)
        return []


class ActionAskItem(Action):
    def name(self) -> str:
        return "action_ask_item"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        order = await open_order(tracker)
        buttons = [
            {
                "title": item.product_name + (f"（{item.size}）" if item.size else ""),
                "payload": f'/inform{{"item": "{item.product_name}"}}',
            }
            for item in (order.items if order else ())
        ]
        dispatcher.utter_message(response="utter_ask_item", buttons=buttons)
        return []


class ActionAskConfirm(Action):
    def name(self) -> str:
        return "action_ask_confirm"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        order = await open_order(tracker)
        if order is None:
            dispatcher.utter_message(response="utter_ask_order_no")
            return []
        request = current_request(tracker)
        values = dict(order_no=order.order_no, items=items_text(order), amount=yuan(order.total_cents))
        if request is OrderRequest.CANCEL:
            response = "utter_confirm_cancel_paid" if order.status == "paid" else "utter_confirm_cancel"
        elif request is OrderRequest.REFUND:
            response = "utter_confirm_cancel_paid"
        elif request is OrderRequest.CHANGE_ADDRESS:
            response = "utter_confirm_change_address"
            values["address"] = tracker.get_slot("new_address")
        else:
            response = "utter_confirm_aftersales"
            values.update(
                kind=TICKET_KIND_ZH.get(request.value, request.value),
                product=tracker.get_slot("item") or "",
                reason=tracker.get_slot("reason") or "",
            )
        dispatcher.utter_message(response=response, **values)
        return []


class ActionCancelRequest(Action):
    """算了 / 不退了 in the middle of a request: end it cleanly."""

    def name(self) -> str:
        return "action_cancel_request"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(response="utter_request_cancelled")
        return [ActiveLoop(None)] + clear_request()


class ActionHandleOrderRequest(Action):
    """Carries out the request once the order form has what it needs."""

    def name(self) -> str:
        return "action_handle_order_request"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        events = clear_request()
        if tracker.get_slot("lookup_locked"):
            dispatcher.utter_message(response="utter_lookup_locked")
            return events + await handoff(dispatcher, tracker, "verification_locked")
        if tracker.get_slot("refusal") == ORDER_LOCKED:
            dispatcher.utter_message(response="utter_order_lookups_locked")
            return events + await handoff(dispatcher, tracker, "verification_locked")
        if tracker.get_slot("confirm") is False:
            dispatcher.utter_message(response="utter_request_cancelled")
            return events
        order = await open_order(tracker)
        if order is None:
            dispatcher.utter_message(response="utter_ask_order_no")
            return events
        request = current_request(tracker)
        item = match_item(order, tracker.get_slot("item"))
        refusal = tracker.get_slot("refusal")
        if refusal:
            # Counted by rule like a refused submission (the dashboard's 被规则拒绝).
            await call(order_service().record_refusal, tracker.sender_id, request, order, refusal)
            refuse(dispatcher, refusal, order, item)
            return events
        resolved = await getattr(self, f"_handle_{request.value}")(dispatcher, tracker, order, item)
        return events + ([SlotSet("resolved", True)] if resolved else [])

    async def _handle_status(self, dispatcher, tracker, order: OrderView, item) -> bool:
        latest = await call(order_service().shipment_events, tracker.sender_id, order, 1)
        dispatcher.utter_message(
            response=f"utter_status_{order.status}",
            order_no=order.order_no,
            items=items_text(order),
            amount=yuan(order.total_cents),
            shipped_at=china_time(order.shipped_at),
            delivered_at=china_time(order.delivered_at),
            carrier=order.carrier or "",
            tracking_no=order.tracking_no or "",
            latest_event=f"{china_time(latest[0].happened_at)} {latest[0].description}" if latest else "暂无",
            json_message=order_card(order),
        )
        return True

    async def _handle_track(self, dispatcher, tracker, order: OrderView, item) -> bool:
        if not order.tracking_no:
            dispatcher.utter_message(
                response="utter_track_not_shipped",
                order_no=order.order_no,
                status=ORDER_STATUS_ZH.get(order.status, order.status),
            )
            return True
        events = await call(order_service().shipment_events, tracker.sender_id, order, 3)
        lines = "\n".join(f"{china_time(e.happened_at)} {e.location}：{e.description}" for e in events) or "暂无"
        dispatcher.utter_message(
            response="utter_track_shipment",
            order_no=order.order_no,
            carrier=order.carrier,
            tracking_no=order.tracking_no,
            events=lines,
        )
        return True

    async def _handle_cancel(self, dispatcher, tracker, order: OrderView, item) -> bool:
        outcome = await call(order_service().cancel, tracker.sender_id, order)
        if not outcome.decision:
            refuse(dispatcher, outcome.decision.rule, outcome.order or order, item)
            return False
        if outcome.ticket is not None:
            dispatcher.utter_message(
                response="utter_cancel_done_refund",
                order_no=order.order_no,
                amount=yuan(order.total_cents),
                ticket_no=outcome.ticket.ticket_no,
            )
        else:
            dispatcher.utter_message(response="utter_cancel_done", order_no=order.order_no)
        return True

    async def _handle_change_address(self, dispatcher, tracker, order: OrderView, item) -> bool:
        outcome = await call(order_service().change_address, tracker.sender_id, order, tracker.get_slot("new_address"))
        if not outcome.decision:
            refuse(dispatcher, outcome.decision.rule, outcome.order or order, item)
            return False
        changed = outcome.order or order
        dispatcher.utter_message(
            response="utter_address_changed",
            order_no=changed.order_no,
            address=mask_address(changed.ship_address),
            name=mask_name(changed.ship_name),
            phone=mask_phone(changed.ship_phone),
        )
        return True

    async def _aftersales(self, dispatcher, tracker, order: OrderView, item, kind: str) -> bool:
        outcome = await call(
            order_service().submit_aftersales, tracker.sender_id, kind, order, item, tracker.get_slot("reason")
        )
        if not outcome.decision:
            refuse(dispatcher, outcome.decision.rule, outcome.order or order, item)
            return False
        ticket = outcome.ticket
        if ticket is None:  # an allowed request always has its ticket
            raise RuntimeError(f"{kind} of order {order.order_no} allowed without a ticket")
        if kind == "refund" and outcome.order is not None and outcome.order.status == "refunding":
            dispatcher.utter_message(
                response="utter_cancel_done_refund",
                order_no=order.order_no,
                amount=yuan(order.total_cents),
                ticket_no=ticket.ticket_no,
            )
        elif outcome.ticket_created:
            dispatcher.utter_message(
                response="utter_ticket_created", kind=TICKET_KIND_ZH[kind], ticket_no=ticket.ticket_no
            )
        else:
            dispatcher.utter_message(
                response="utter_ticket_exists",
                kind=TICKET_KIND_ZH[ticket.kind],
                ticket_no=ticket.ticket_no,
                status=TICKET_STATUS_ZH.get(ticket.status, ticket.status),
            )
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
            f"（{china_time(t.created_at, '%m-%d %H:%M')}提交）"
            for t in tickets[:5]
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


def refuse(dispatcher: CollectingDispatcher, rule: str, order: OrderView, item: OrderItemView | None) -> None:
    """Explain a refusal with the rule's own response (utter_rule_<rule>)."""
    ends = warranty_ends(order, item) if item else None
    dispatcher.utter_message(
        response=f"utter_rule_{rule}",
        order_no=order.order_no,
        status=ORDER_STATUS_ZH.get(order.status, order.status),
        product=item.product_name if item else items_text(order),
        warranty=item.warranty_months if item else "",
        warranty_end=china_time(ends, "%Y-%m-%d") if ends else "",
    )


async def handoff(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str) -> list[EventType]:
    """Record a hand-off request and tell the customer what happens next."""
    request_id, ahead, created = await call(records().handoff, tracker.sender_id, reason)
    in_hours = within_service_hours(datetime.now(CHINA_TZ))
    console = services().console
    # One console query per new hand-off: are there agents at all, and is one there now?
    staffing = await call(console.staffing) if console is not None and created else None
    if not created:
        dispatcher.utter_message(response="utter_handoff_already", queue=ahead)
    elif console is not None and staffing is not None and staffing.in_use and not (in_hours and staffing.available):
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

    def name(self) -> str:
        return "action_complaint"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        order = await open_order(tracker)
        outcome = await call(
            order_service().complaint, tracker.sender_id, customer_id_of(tracker), order, latest_text(tracker)
        )
        dispatcher.utter_message(
            response="utter_complaint_received", ticket_no=outcome.ticket.ticket_no if outcome.ticket else ""
        )
        return await handoff(dispatcher, tracker, "complaint")
