"""Service notices from the shop database's own changes, found by polling
with high-water marks (notice_cursors): new shipment events, after-sales
ticket status changes, unpaid orders about to close. Each becomes one outbox
row with a key naming the event and the customer, so a poll that runs twice,
or two workers polling at once, add nothing twice.

A shop whose order system lives elsewhere posts the same events to
POST /api/notices/events instead (kefu.web, docs/notices.md)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from kefu.db.engine import session_scope, utcnow
from kefu.db.models import AftersalesTicket, Order, OrderItem, Product, ShipmentEvent
from kefu.notices.store import NoticeStore
from kefu.notices.templates import render
from kefu.shop.formatting import TICKET_KIND_ZH, TICKET_STATUS_ZH, yuan

logger = logging.getLogger(__name__)

BATCH = 1000


def shipment_kind(description: str) -> str | None:
    """Which shipment events are worth a notice (the rest are in transit)."""
    if any(word in description for word in ("异常", "退回", "滞留", "拒收", "丢失")):
        return "exception"
    if "签收" in description:
        return "delivered"
    if "派送中" in description or "正在派送" in description:
        return "out_for_delivery"
    if "揽收" in description or "已发货" in description:
        return "shipped"
    return None


SHIPMENT_RESPONSES = {
    "shipped": "utter_notice_shipped",
    "out_for_delivery": "utter_notice_out_for_delivery",
    "delivered": "utter_notice_delivered",
    "exception": "utter_notice_shipment_exception",
}


@dataclass(frozen=True)
class UnpaidRule:
    """An order unpaid `close_minutes` after it was placed closes; the reminder
    goes `remind_minutes` before that (KEFU_UNPAID_CLOSE_MINUTES,
    KEFU_UNPAID_REMIND_MINUTES)."""

    close_minutes: int = 24 * 60
    remind_minutes: int = 60

    @classmethod
    def from_env(cls) -> UnpaidRule:
        return cls(
            int(os.environ.get("KEFU_UNPAID_CLOSE_MINUTES", 24 * 60)),
            int(os.environ.get("KEFU_UNPAID_REMIND_MINUTES", 60)),
        )


def _items(session, order_ids: list[int]) -> dict[int, str]:
    rows = session.execute(
        select(OrderItem.order_id, Product.name, OrderItem.quantity)
        .join(Product, Product.id == OrderItem.product_id)
        .where(OrderItem.order_id.in_(order_ids))
        .order_by(OrderItem.id)
    ).all()
    names: dict[int, list[str]] = {}
    for order_id, name, quantity in rows:
        names.setdefault(order_id, []).append(name if quantity == 1 else f"{name}×{quantity}")
    return {order_id: "、".join(parts[:2]) + ("等" if len(parts) > 2 else "") for order_id, parts in names.items()}


class Triggers:
    def __init__(self, store: NoticeStore, unpaid: UnpaidRule | None = None) -> None:
        self.store = store
        self.unpaid = unpaid or UnpaidRule.from_env()

    def poll(self, now: datetime | None = None) -> list[int]:
        """One round of every trigger; the ids of the notices written."""
        now = now or utcnow()
        return self.shipments() + self.tickets(now) + self.unpaid_orders(now)

    def _add(self, written: list[int], *args, **kwargs) -> None:
        notice_id = self.store.add(*args, **kwargs)
        if notice_id is not None:
            written.append(notice_id)

    def shipments(self) -> list[int]:
        mark = self.store.cursor("shipment_events")
        with session_scope(self.store.engine) as session:
            if mark is None:
                # First start: events from before Kefu sent notices are history, not news.
                latest = session.execute(select(func.max(ShipmentEvent.id))).scalar() or 0
                self.store.set_cursor("shipment_events", latest)
                return []
            rows = session.execute(
                select(ShipmentEvent, Order)
                .join(Order, Order.id == ShipmentEvent.order_id)
                .where(ShipmentEvent.id > mark[0])
                .order_by(ShipmentEvent.id)
                .limit(BATCH)
            ).all()
            items = _items(session, [order.id for _, order in rows])
            found = [
                (
                    event.id,
                    event.description,
                    order.id,
                    order.customer_id,
                    order.order_no,
                    order.carrier,
                    order.tracking_no,
                )
                for event, order in rows
            ]
        written: list[int] = []
        for event_id, description, order_id, customer_id, order_no, carrier, tracking_no in found:
            kind = shipment_kind(description)
            if kind is not None:
                messages = render(
                    SHIPMENT_RESPONSES[kind],
                    order_no=order_no,
                    items=items.get(order_id, ""),
                    carrier=carrier or "",
                    tracking_no=tracking_no or "",
                    description=description,
                )
                key = f"shipment:{event_id}:{customer_id}"
                self._add(written, key, customer_id, "service", "shipment", messages, order_id=order_id)
        if found:
            # The mark moves after the rows are written: a crash in between repeats
            # the batch, which the keys make harmless.
            self.store.set_cursor("shipment_events", found[-1][0])
        return written

    def tickets(self, now: datetime) -> list[int]:
        mark = self.store.cursor("aftersales_tickets")
        if mark is None:
            self.store.set_cursor("aftersales_tickets", 0, now)
            return []
        since = mark[1] or now
        with session_scope(self.store.engine) as session:
            rows = session.execute(
                select(AftersalesTicket)
                .where(AftersalesTicket.updated_at >= since, AftersalesTicket.customer_id.is_not(None))
                .order_by(AftersalesTicket.updated_at, AftersalesTicket.id)
                .limit(BATCH)
            ).scalars()
            found = [(t.id, t.customer_id, t.order_id, t.ticket_no, t.kind, t.status, t.updated_at) for t in rows]
        written: list[int] = []
        for ticket_id, customer_id, order_id, ticket_no, kind, status, _ in found:
            if status == "open":
                continue  # the customer has just asked for it in the chat
            messages = render(
                "utter_notice_ticket_status",
                ticket_no=ticket_no,
                kind=TICKET_KIND_ZH.get(kind, kind),
                status=TICKET_STATUS_ZH.get(status, status),
            )
            key = f"ticket:{ticket_id}:{status}:{customer_id}"
            self._add(written, key, customer_id, "service", "ticket", messages, order_id=order_id)
        if found:
            # ">=" on the next poll: rows updated in the same instant are read
            # again, and their keys keep them from being sent twice.
            self.store.set_cursor("aftersales_tickets", 0, found[-1][6])
        return written

    def unpaid_orders(self, now: datetime) -> list[int]:
        """Orders inside the reminder window before closing: one reminder each, ever."""
        close = timedelta(minutes=self.unpaid.close_minutes)
        remind = timedelta(minutes=self.unpaid.remind_minutes)
        with session_scope(self.store.engine) as session:
            rows = session.execute(
                select(Order)
                .where(
                    Order.status == "pending_payment",
                    Order.created_at <= now - close + remind,
                    Order.created_at > now - close,
                )
                .order_by(Order.id)
                .limit(BATCH)
            ).scalars()
            found = [(o.id, o.customer_id, o.order_no, o.total_cents, o.created_at) for o in rows]
            items = _items(session, [f[0] for f in found])
        written: list[int] = []
        for order_id, customer_id, order_no, total_cents, created_at in found:
            minutes_left = max(1, int((created_at + close - now).total_seconds() // 60))
            messages = render(
                "utter_notice_unpaid",
                order_no=order_no,
                items=items.get(order_id, ""),
                total=yuan(total_cents),
                minutes=minutes_left,
            )
            key = f"unpaid:{order_id}:{customer_id}"
            self._add(written, key, customer_id, "service", "unpaid", messages, order_id=order_id)
        return written
