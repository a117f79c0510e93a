"""After-sales and order rules of docs/shop.md, as pure functions.

Each check returns a Decision: allowed or not, and a rule code. The codes
name the domain responses that explain a refusal to the customer
(``utter_rule_<code>``), so the wording lives with the other Chinese text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kefu.shop.views import OrderItemView, OrderView

RETURN_DAYS = 7
EXCHANGE_DAYS = 15
CANCELLABLE = ("pending_payment", "paid")
ADDRESS_CHANGEABLE = ("pending_payment", "paid")
DELIVERED_STATES = ("delivered", "completed")

QUALITY = "质量问题"
WRONG_SIZE = "尺码不合适"
WRONG_ITEM = "发错货"
MISSING_ITEM = "少件"
REASONS = (QUALITY, WRONG_SIZE, "不喜欢", WRONG_ITEM, MISSING_ITEM, "其他")
# Problems caused by the shop count like a quality problem (三包): the
# customer is not to pay for the shop's mistake.
SHOP_FAULT = (QUALITY, WRONG_ITEM, MISSING_ITEM)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str

    def __bool__(self) -> bool:
        return self.allowed


def allow(rule: str) -> Decision:
    return Decision(True, rule)


def refuse(rule: str) -> Decision:
    return Decision(False, rule)


def days_since(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else (now - moment).total_seconds() / 86400


def can_cancel(order: OrderView) -> Decision:
    if order.status in CANCELLABLE:
        return allow("cancel_ok")
    if order.status == "cancelled":
        return refuse("already_cancelled")
    return refuse("cancel_after_shipping")


def status_after_cancel(order: OrderView) -> str:
    # A paid order is cancelled by refunding it.
    return "refunding" if order.status == "paid" else "cancelled"


def can_change_address(order: OrderView) -> Decision:
    if order.status in ADDRESS_CHANGEABLE:
        return allow("address_ok")
    return refuse("address_after_shipping")


def _delivered_days(order: OrderView, now: datetime) -> float | None:
    if order.status not in DELIVERED_STATES and order.delivered_at is None:
        return None
    return days_since(order.delivered_at, now)


def can_return(order: OrderView, item: OrderItemView, reason: str | None, now: datetime) -> Decision:
    days = _delivered_days(order, now)
    if days is None:
        return refuse("return_not_delivered")
    if days > RETURN_DAYS:
        return refuse("return_window")
    if item.returnable or reason in SHOP_FAULT:
        return allow("return_ok")
    return refuse("return_not_returnable")


def return_possible(order: OrderView, item: OrderItemView, now: datetime) -> Decision:
    """Could any reason make a return allowed? (checked before asking the reason)"""
    return can_return(order, item, QUALITY, now)


def can_exchange(order: OrderView, item: OrderItemView, reason: str | None, now: datetime) -> Decision:
    days = _delivered_days(order, now)
    if days is None:
        return refuse("exchange_not_delivered")
    if days > EXCHANGE_DAYS:
        return refuse("exchange_window")
    if reason in SHOP_FAULT:
        return allow("exchange_ok")
    if reason in (WRONG_SIZE, "颜色不合适") and item.returnable:
        return allow("exchange_ok")
    if reason in (WRONG_SIZE, "颜色不合适"):
        return refuse("exchange_not_returnable")
    return refuse("exchange_reason")


def exchange_possible(order: OrderView, item: OrderItemView, now: datetime) -> Decision:
    return can_exchange(order, item, QUALITY, now)


def warranty_ends(order: OrderView, item: OrderItemView) -> datetime | None:
    if order.delivered_at is None:
        return None
    # Months as 30-day blocks keeps the rule simple to state to a customer.
    return order.delivered_at + timedelta(days=30 * item.warranty_months)


def can_repair(order: OrderView, item: OrderItemView, now: datetime) -> Decision:
    if _delivered_days(order, now) is None:
        return refuse("repair_not_delivered")
    if item.warranty_months <= 0:
        return refuse("repair_no_warranty")
    ends = warranty_ends(order, item)
    if ends is None or now > ends:
        return refuse("repair_warranty_expired")
    return allow("repair_ok")


def can_refund(order: OrderView, has_approved_return: bool) -> Decision:
    if order.status == "paid":
        return allow("refund_cancel_unshipped")
    if order.status == "refunding":
        return refuse("refund_in_progress")
    if order.status == "refunded":
        return refuse("refund_done")
    if order.status == "pending_payment":
        return refuse("refund_unpaid")
    if order.status == "cancelled":
        return refuse("refund_cancelled_order")
    if has_approved_return:
        return allow("refund_after_return")
    return refuse("refund_needs_return")
