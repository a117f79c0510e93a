"""The shop's service layer: who may see what, and the after-sales rules.

Knows nothing of Rasa. Actions call it with plain values and nothing else:
it goes through the data-access interface (ShopRepository), writes an audit
row for every look-up or change of an order, and runs every change (with its
ticket and audit row) as one unit of work, so a failure leaves nothing half
done. Storage failures reach the caller as ``ShopUnavailable``.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from kefu.db.engine import utcnow
from kefu.shop import rules, tokens
from kefu.shop.errors import StateConflict
from kefu.shop.repository import ShopRepository, get_repository
from kefu.shop.requests import OrderRequest, TicketKind
from kefu.shop.rules import Decision
from kefu.shop.views import (
    CustomerView,
    OrderItemView,
    OrderView,
    ProductView,
    PromotionView,
    ShipmentEventView,
    TicketView,
)

logger = logging.getLogger(__name__)

# Wrong phone tails: a conversation is locked after MAX_TAIL_ATTEMPTS; an
# order is locked for everybody after ORDER_LOCK_FAILURES wrong tails within
# ORDER_LOCK_WINDOW, whatever conversations they came from (new sender ids
# give no new guesses), until the window has passed.
MAX_TAIL_ATTEMPTS = 3
ORDER_LOCK_FAILURES = 6
ORDER_LOCK_WINDOW = timedelta(minutes=30)
AFTERSALES_KINDS = tuple(kind.value for kind in TicketKind)
ORDINALS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5}


class Verification(enum.Enum):
    VERIFIED = "verified"
    WRONG_TAIL = "wrong_tail"
    LOCKED = "locked"


@dataclass(frozen=True)
class Prepared:
    """What is known about a request right after verification: the item it
    is about (when the order says), and the rule that refuses it already
    (when no answer to the form's questions could make it allowed)."""

    item: OrderItemView | None = None
    refusal: str | None = None


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    order: OrderView | None = None
    ticket: TicketView | None = None
    ticket_created: bool = False


def match_item(order: OrderView, name: str | None) -> OrderItemView | None:
    """The order's item a customer means: its catalogue name, an ordinal
    (第二件) or a part of its name."""
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


def clean_text(value: str | None, limit: int) -> str:
    """Free text as stored: whitespace folded, NUL and other control
    characters dropped (PostgreSQL refuses NUL), cut to the column size."""
    text = "".join(ch for ch in (value or "") if ch >= " " or ch in "\n\t")
    return " ".join(text.split())[:limit]


def canonical_reason(value: str | None) -> str | None:
    text = clean_text(value, 100)
    return next((reason for reason in rules.REASONS if reason == text), text) or None


def request_key(conversation_id: str, kind: str, order_no: str | None, product_id: int | None) -> str:
    """The identity of one after-sales request: the same request delivered or
    confirmed twice maps to the same key, hence to one ticket."""
    raw = f"{conversation_id}|{kind}|{order_no or '-'}|{product_id or '-'}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


class OrderService:
    def __init__(self, repository: ShopRepository | None = None, clock: Callable[[], datetime] = utcnow):
        self.repository = repository or get_repository()
        self.clock = clock

    def _audit(self, conversation_id: str | None, action: str, order: OrderView | None, outcome: str) -> None:
        self.repository.audit(conversation_id, action, order.id if order else None, outcome)

    # --- identity -------------------------------------------------------------

    def customer_from_metadata(self, metadata: dict | None, sender_id: str | None = None) -> CustomerView | None:
        """A customer vouched for by the channel: a signed token, or a WeChat
        openid the WeChat channel itself signed (an openid a client wrote
        into its metadata counts for nothing). With `sender_id`, a WeChat
        identity counts only in that openid's own conversation."""
        metadata = metadata or {}
        customer_id = tokens.verify_customer_token(metadata.get(tokens.METADATA_KEY))
        if customer_id is not None:
            return self.repository.customer_by_id(customer_id)
        openid = tokens.verify_wechat_identity(metadata.get(tokens.WECHAT_METADATA_KEY))
        if openid is None or (sender_id is not None and sender_id != f"wechat-{openid}"):
            return None
        return self.repository.customer_by_openid(openid)

    def verify_phone_tail(self, conversation_id: str, order: OrderView, phone_tail: str) -> Verification:
        """A right tail unlocks this one order for the conversation (not the
        customer's account). Wrong tails are counted per order across all
        conversations, in the audit log; past the limit the order is locked
        for a while, even for the right tail."""
        with self.repository.unit_of_work():
            if self.order_locked(order):
                self._audit(conversation_id, "verify_phone_tail", order, "locked")
                return Verification.LOCKED
            owner = self.repository.verify_phone_tail(order.order_no, phone_tail)
            result = Verification.VERIFIED if owner == order.customer_id else Verification.WRONG_TAIL
            self._audit(conversation_id, "verify_phone_tail", order, result.value)
            if result is Verification.WRONG_TAIL and self.order_locked(order):
                logger.warning(
                    "order %s: look-ups locked for %s after %d wrong phone tails",
                    order.order_no,
                    ORDER_LOCK_WINDOW,
                    ORDER_LOCK_FAILURES,
                )
                self._audit(conversation_id, "lock_order_lookups", order, "locked")
            return result

    def order_locked(self, order: OrderView) -> bool:
        since = self.clock() - ORDER_LOCK_WINDOW
        failures = self.repository.count_audited(order.id, "verify_phone_tail", Verification.WRONG_TAIL.value, since)
        return failures >= ORDER_LOCK_FAILURES

    # --- look-ups -------------------------------------------------------------

    def find_order(self, conversation_id: str, order_no: str) -> OrderView | None:
        """Found or not found; the caller shows nothing more before verification."""
        with self.repository.unit_of_work():
            order = self.repository.find_order(order_no) if order_no else None
            self._audit(conversation_id, "find_order", order, "found" if order else "not_found")
            return order

    def find_order_by_tracking_no(self, conversation_id: str, tracking_no: str) -> OrderView | None:
        """The order a parcel label belongs to; like `find_order`, it shows
        nothing before the phone tail (the ship phone's) is verified."""
        with self.repository.unit_of_work():
            order = self.repository.find_order_by_tracking_no(tracking_no) if tracking_no else None
            self._audit(conversation_id, "find_order_by_tracking_no", order, "found" if order else "not_found")
            return order

    def accessible_order(
        self,
        conversation_id: str,
        order_no: str | None,
        *,
        customer_id: int | None = None,
        verified_order_no: str | None = None,
    ) -> OrderView | None:
        """The order if this conversation may see it: the channel vouched for
        its owner (`customer_id`), or its phone tail was verified here
        (`verified_order_no`). Any other order is reported as not found, so
        nothing about it leaks."""
        if not order_no or (customer_id is None and order_no != verified_order_no):
            return None
        with self.repository.unit_of_work():
            order = self.repository.find_order(order_no)
            if (
                order is not None
                and customer_id is not None
                and order.customer_id != customer_id
                and order_no != verified_order_no
            ):
                self._audit(conversation_id, "find_order", order, "other_customer")
                return None
            self._audit(conversation_id, "find_order", order, "found" if order else "not_found")
            return order

    def order_of_customer(self, conversation_id: str, order_no: str, customer_id: int) -> OrderView | None:
        """The order if it belongs to `customer_id`, else None (not found)."""
        return self.accessible_order(conversation_id, order_no, customer_id=customer_id)

    def prepare(
        self, request: OrderRequest, order: OrderView, item_name: str | None = None, reason: str | None = None
    ) -> Prepared:
        """The pre-check of every request kind once the order is verified:
        pick the item when the order says which, and refuse early when no
        answer could make the request allowed (a reason already given is
        taken into account)."""
        item = None
        if request.needs_item:
            item = match_item(order, item_name)
            if item is None and len(order.items) == 1:
                item = order.items[0]
            if item is None:
                return Prepared()
        if request is OrderRequest.CANCEL:
            decision = rules.can_cancel(order)
        elif request is OrderRequest.CHANGE_ADDRESS:
            decision = rules.can_change_address(order)
        elif request.ticket_kind is not None:
            decision = self.precheck(request.value, order, item)
            if decision and reason and request in (OrderRequest.RETURN, OrderRequest.EXCHANGE):
                decision = self.decide(request.value, order, item, reason)
        else:
            return Prepared(item)
        return Prepared(item, None if decision else decision.rule)

    def record_refusal(self, conversation_id: str, request: OrderRequest, order: OrderView, rule: str) -> None:
        """A request a rule refused at the pre-check (the customer is told
        before anything is submitted): audited as a refused submission is,
        so that refusals are counted by rule wherever they happen."""
        action = {OrderRequest.CANCEL: "cancel_order", OrderRequest.CHANGE_ADDRESS: "change_address"}.get(
            request, f"request_{request.value}"
        )
        with self.repository.unit_of_work():
            self._audit(conversation_id, action, order, f"refused:{rule}")

    def recent_orders(self, conversation_id: str, customer_id: int, limit: int = 5) -> list[OrderView]:
        """A logged-in customer's orders (never offered after a phone-tail
        verification, which unlocks one order only)."""
        with self.repository.unit_of_work():
            orders = self.repository.orders_of_customer(customer_id, limit)
            self.repository.audit(conversation_id, "list_orders", None, f"{len(orders)} orders")
            return orders

    def shipment_events(self, conversation_id: str, order: OrderView, limit: int = 3) -> list[ShipmentEventView]:
        with self.repository.unit_of_work():
            events = self.repository.shipment_events(order.id, limit)
            self._audit(conversation_id, "track_shipment", order, f"{len(events)} events")
            return events

    def tickets(self, conversation_id: str, order: OrderView) -> list[TicketView]:
        with self.repository.unit_of_work():
            tickets = self.repository.tickets_of_order(order.id)
            self._audit(conversation_id, "aftersales_status", order, f"{len(tickets)} tickets")
            return tickets

    # --- changes --------------------------------------------------------------

    def cancel(self, conversation_id: str, order: OrderView) -> Outcome:
        """The status change, the refund ticket of a paid order and the audit
        row happen together or not at all."""
        with self.repository.unit_of_work():
            return self._cancel(conversation_id, order)

    def _cancel(self, conversation_id: str, order: OrderView) -> Outcome:
        decision = rules.can_cancel(order)
        if not decision:
            self._audit(conversation_id, "cancel_order", order, f"refused:{decision.rule}")
            return Outcome(decision, order)
        new_status = rules.status_after_cancel(order)
        try:
            changed = self.repository.cancel_order(order.id, rules.CANCELLABLE, new_status)
        except StateConflict:
            # Shipped between the look-up and the confirmation.
            fresh = self.repository.find_order(order.order_no) or order
            decision = rules.can_cancel(fresh)
            self._audit(conversation_id, "cancel_order", fresh, f"refused:{decision.rule}")
            return Outcome(decision if not decision else rules.refuse("cancel_after_shipping"), fresh)
        ticket = None
        if new_status == "refunding":
            ticket, _ = self.repository.create_ticket(
                request_key=request_key(conversation_id, "refund", order.order_no, None),
                kind="refund",
                order_id=order.id,
                customer_id=order.customer_id,
                reason="取消订单退款",
                conversation_id=conversation_id,
                status="in_progress",
            )
        self._audit(conversation_id, "cancel_order", changed, f"ok:{new_status}")
        return Outcome(decision, changed, ticket, ticket is not None)

    def change_address(self, conversation_id: str, order: OrderView, new_address: str) -> Outcome:
        with self.repository.unit_of_work():
            return self._change_address(conversation_id, order, new_address)

    def _change_address(self, conversation_id: str, order: OrderView, new_address: str) -> Outcome:
        decision = rules.can_change_address(order)
        new_address = clean_text(new_address, 256)
        if decision and len(new_address) < 6:
            decision = rules.refuse("address_invalid")
        if not decision:
            self._audit(conversation_id, "change_address", order, f"refused:{decision.rule}")
            return Outcome(decision, order)
        try:
            changed = self.repository.change_address(order.id, rules.ADDRESS_CHANGEABLE, new_address)
        except StateConflict:
            fresh = self.repository.find_order(order.order_no) or order
            self._audit(conversation_id, "change_address", fresh, "refused:address_after_shipping")
            return Outcome(rules.refuse("address_after_shipping"), fresh)
        self._audit(conversation_id, "change_address", changed, "ok")
        return Outcome(decision, changed)

    # --- after-sales ----------------------------------------------------------

    def precheck(self, kind: str, order: OrderView, item: OrderItemView | None) -> Decision:
        """Whether the request can possibly be allowed, before asking for a reason."""
        now = self.clock()
        if kind == "return" and item is not None:
            return rules.return_possible(order, item, now)
        if kind == "exchange" and item is not None:
            return rules.exchange_possible(order, item, now)
        if kind == "repair" and item is not None:
            return rules.can_repair(order, item, now)
        if kind == "refund":
            return rules.can_refund(order, self._has_approved_return(order))
        return rules.allow(f"{kind}_ok")

    def decide(self, kind: str, order: OrderView, item: OrderItemView | None, reason: str | None) -> Decision:
        now = self.clock()
        if kind == "return" and item is not None:
            return rules.can_return(order, item, reason, now)
        if kind == "exchange" and item is not None:
            return rules.can_exchange(order, item, reason, now)
        return self.precheck(kind, order, item)

    def _has_approved_return(self, order: OrderView) -> bool:
        return any(
            t.kind == "return" and t.status in ("approved", "closed")
            for t in self.repository.tickets_of_order(order.id)
        )

    def submit_aftersales(
        self, conversation_id: str, kind: str, order: OrderView, item: OrderItemView | None, reason: str | None
    ) -> Outcome:
        """Apply the rules and create exactly one ticket for an allowed request."""
        if kind not in AFTERSALES_KINDS:
            raise ValueError(f"unknown after-sales kind {kind!r}")
        with self.repository.unit_of_work():
            if kind == "refund" and order.status == "paid":
                # Refunding an unshipped order is cancelling it.
                return self._cancel(conversation_id, order)
            return self._submit_aftersales(conversation_id, kind, order, item, canonical_reason(reason))

    def _submit_aftersales(
        self, conversation_id: str, kind: str, order: OrderView, item: OrderItemView | None, reason: str | None
    ) -> Outcome:
        decision = self.decide(kind, order, item, reason)
        if not decision:
            self._audit(conversation_id, f"request_{kind}", order, f"refused:{decision.rule}")
            return Outcome(decision, order)
        ticket, created = self.repository.create_ticket(
            request_key=request_key(conversation_id, kind, order.order_no, item.product_id if item else None),
            kind=kind,
            order_id=order.id,
            customer_id=order.customer_id,
            reason=reason or "",
            conversation_id=conversation_id,
            product_id=item.product_id if item else None,
        )
        self._audit(conversation_id, f"request_{kind}", order, "ticket_created" if created else "ticket_exists")
        return Outcome(decision, order, ticket, created)

    def complaint(self, conversation_id: str, customer_id: int | None, order: OrderView | None, text: str) -> Outcome:
        """Complaints are always accepted: one ticket per conversation and order."""
        with self.repository.unit_of_work():
            ticket, created = self.repository.create_ticket(
                request_key=request_key(conversation_id, "complaint", order.order_no if order else None, None),
                kind="complaint",
                order_id=order.id if order else None,
                customer_id=customer_id if customer_id is not None else (order.customer_id if order else None),
                reason=clean_text(text, 256),
                conversation_id=conversation_id,
            )
            self._audit(conversation_id, "complaint", order, "ticket_created" if created else "ticket_exists")
            return Outcome(rules.allow("complaint_ok"), order, ticket, created)


class ProductService:
    def __init__(self, repository: ShopRepository | None = None):
        self.repository = repository or get_repository()

    def product(self, name: str | None) -> ProductView | None:
        return self.repository.get_product(name) if name else None

    def recommend(
        self,
        *,
        category: str | None = None,
        brand: str | None = None,
        max_price_yuan: float | None = None,
        text: str | None = None,
        limit: int = 3,
    ) -> list[ProductView]:
        """Products that exist, within budget, in stock first."""
        max_cents = int(max_price_yuan * 100) if max_price_yuan else None
        found = self.repository.search_products(
            text, brand=brand, category=category, max_price_cents=max_cents, limit=limit
        )
        if not found and brand and category:
            # 小米的耳机 when the shop has no such thing: widen to the category.
            found = self.repository.search_products(None, category=category, max_price_cents=max_cents, limit=limit)
        return found

    def promotions(self) -> list[PromotionView]:
        return self.repository.active_promotions()


class ConversationRecords:
    """Ratings and hand-offs."""

    def __init__(self, repository: ShopRepository | None = None):
        self.repository = repository or get_repository()

    def rate(self, conversation_id: str, score: int, comment: str | None = None) -> int:
        return self.repository.record_rating(conversation_id, max(1, min(5, int(score))), clean_text(comment, 500))

    def handoff(self, conversation_id: str, reason: str) -> tuple[int, int, bool]:
        """(request id, customers waiting ahead, created now)."""
        with self.repository.unit_of_work():
            request_id, created = self.repository.request_handoff(conversation_id, reason)
            return request_id, self.repository.waiting_handoffs_before(request_id), created
