"""A complete `ShopRepository` kept in memory.

Two uses: the fast tests run the service and the actions on it without a
database, and a shop writing its own repository can read it as the reference
of what each method must do (the SQL one, `SqlShopRepository`, is the other).
Its unit of work is real: a failure inside one restores every row.
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime

from kefu.db.engine import utcnow
from kefu.db.models import OPEN_TICKET_STATUSES
from kefu.shop.errors import ShopUnavailable, StateConflict
from kefu.shop.repository import ShopRepository
from kefu.shop.views import (
    CatalogueTerms,
    CustomerView,
    OrderItemView,
    OrderView,
    ProductView,
    PromotionView,
    ShipmentEventView,
    TicketView,
)


@dataclass
class _Rows:
    customers: dict[int, CustomerView] = field(default_factory=dict)
    products: dict[int, ProductView] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)  # alias -> product id
    orders: dict[int, OrderView] = field(default_factory=dict)
    events: dict[int, list[ShipmentEventView]] = field(default_factory=dict)  # order id -> events
    tickets: dict[int, TicketView] = field(default_factory=dict)
    ticket_keys: dict[str, int] = field(default_factory=dict)  # request key -> ticket id
    ticket_products: dict[int, int | None] = field(default_factory=dict)  # ticket id -> product id
    promotions: list[PromotionView] = field(default_factory=list)
    ratings: list[dict] = field(default_factory=list)
    handoffs: dict[int, dict] = field(default_factory=dict)
    audit_log: list[dict] = field(default_factory=list)


class InMemoryShopRepository(ShopRepository):
    def __init__(self) -> None:
        self.rows = _Rows()
        self.available = True  # False: every call raises ShopUnavailable, like a database that is down
        self._lock = threading.RLock()
        self._in_unit: ContextVar[bool] = ContextVar(f"kefu_memory_uow_{id(self)}", default=False)

    @classmethod
    def from_rows(cls, tables: dict[str, list[dict]]) -> InMemoryShopRepository:
        """From rows per table, as `kefu.shop.demo.demo_rows` makes them."""
        repo = cls()
        rows = repo.rows
        for c in tables.get("customers", ()):
            rows.customers[c["id"]] = CustomerView(c["id"], c["name"], c["phone"], c.get("wechat_openid"))
        for p in tables.get("products", ()):
            rows.products[p["id"]] = ProductView(
                id=p["id"],
                sku=p["sku"],
                name=p["name"],
                brand=p["brand"],
                category=p["category"],
                price_cents=p["price_cents"],
                stock=p["stock"],
                warranty_months=p["warranty_months"],
                returnable=bool(p["returnable"]),
                description=p.get("description") or "",
                sizes=tuple(filter(None, (p.get("sizes") or "").split(","))),
                colors=tuple(filter(None, (p.get("colors") or "").split(","))),
                specs=tuple(tuple(kv.split(":", 1)) for kv in (p.get("specs") or "").split(";") if ":" in kv),
                image_url=p.get("image_url") or "",
                restock_at=p.get("restock_at"),
            )
        for a in tables.get("product_aliases", ()):
            rows.aliases[a["alias"]] = a["product_id"]
        items: dict[int, list[OrderItemView]] = {}
        for i in tables.get("order_items", ()):
            product = rows.products[i["product_id"]]
            items.setdefault(i["order_id"], []).append(
                OrderItemView(
                    product_id=product.id,
                    product_name=product.name,
                    quantity=i["quantity"],
                    unit_price_cents=i["unit_price_cents"],
                    returnable=product.returnable,
                    warranty_months=product.warranty_months,
                    category=product.category,
                    size=i.get("size"),
                    color=i.get("color"),
                )
            )
        for o in tables.get("orders", ()):
            rows.orders[o["id"]] = OrderView(
                id=o["id"],
                order_no=o["order_no"],
                customer_id=o["customer_id"],
                status=o["status"],
                total_cents=o["total_cents"],
                created_at=o["created_at"],
                paid_at=o.get("paid_at"),
                shipped_at=o.get("shipped_at"),
                delivered_at=o.get("delivered_at"),
                carrier=o.get("carrier"),
                tracking_no=o.get("tracking_no"),
                ship_name=o["ship_name"],
                ship_phone=o["ship_phone"],
                ship_address=o["ship_address"],
                items=tuple(items.get(o["id"], ())),
            )
        for e in tables.get("shipment_events", ()):
            rows.events.setdefault(e["order_id"], []).append(
                ShipmentEventView(e["happened_at"], e["location"], e["description"])
            )
        for t in tables.get("aftersales_tickets", ()):
            rows.tickets[t["id"]] = TicketView(
                id=t["id"],
                ticket_no=t["ticket_no"],
                order_id=t.get("order_id"),
                customer_id=t.get("customer_id"),
                kind=t["kind"],
                reason=t.get("reason") or "",
                status=t["status"],
                created_at=t["created_at"],
            )
            if t.get("request_key"):
                rows.ticket_keys[t["request_key"]] = t["id"]
            rows.ticket_products[t["id"]] = t.get("product_id")
        for p in tables.get("promotions", ()):
            rows.promotions.append(
                PromotionView(
                    p["kind"],
                    p["title"],
                    p["description"],
                    p.get("code"),
                    p.get("threshold_cents"),
                    p.get("discount_cents"),
                    p.get("category"),
                    p["starts_at"],
                    p["ends_at"],
                )
            )
        return repo

    # --- the unit of work: copy on entry, restore on failure -------------------

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        if self._in_unit.get():
            yield
            return
        with self._lock:
            self._check()
            saved = copy.deepcopy(self.rows)
            token = self._in_unit.set(True)
            try:
                yield
            except BaseException:
                self.rows = saved
                raise
            finally:
                self._in_unit.reset(token)

    def _check(self) -> None:
        if not self.available:
            raise ShopUnavailable("the in-memory shop is switched off")

    # --- customers and verification --------------------------------------------

    def customer_by_id(self, customer_id: int) -> CustomerView | None:
        self._check()
        return self.rows.customers.get(customer_id)

    def customer_by_openid(self, openid: str) -> CustomerView | None:
        self._check()
        return next((c for c in self.rows.customers.values() if c.wechat_openid == openid), None)

    def verify_phone_tail(self, order_no: str, phone_tail: str) -> int | None:
        if not (phone_tail and len(phone_tail) == 4 and phone_tail.isdigit()):
            return None
        order = self.find_order(order_no)
        if order is None:
            return None
        phone = self.rows.customers[order.customer_id].phone
        return order.customer_id if phone.endswith(phone_tail) or order.ship_phone.endswith(phone_tail) else None

    # --- orders ------------------------------------------------------------------

    def find_order(self, order_no: str) -> OrderView | None:
        self._check()
        return next((o for o in self.rows.orders.values() if o.order_no == order_no), None)

    def find_order_by_tracking_no(self, tracking_no: str) -> OrderView | None:
        self._check()
        return next((o for o in self.rows.orders.values() if o.tracking_no == tracking_no), None)

    def orders_of_customer(self, customer_id: int, limit: int = 5) -> list[OrderView]:
        self._check()
        mine = [o for o in self.rows.orders.values() if o.customer_id == customer_id]
        return sorted(mine, key=lambda o: (o.created_at, o.id), reverse=True)[:limit]

    def shipment_events(self, order_id: int, limit: int | None = None) -> list[ShipmentEventView]:
        self._check()
        events = sorted(self.rows.events.get(order_id, ()), key=lambda e: e.happened_at, reverse=True)
        return events[:limit] if limit else events

    def _transition(self, order_id: int, allowed_from: Iterable[str], **values) -> OrderView:
        with self.unit_of_work():
            order = self.rows.orders[order_id]
            if order.status not in tuple(allowed_from):
                raise StateConflict(f"order {order_id} is {order.status}")
            self.rows.orders[order_id] = changed = replace(order, **values)
            return changed

    def cancel_order(self, order_id: int, allowed_from: Iterable[str], new_status: str) -> OrderView:
        return self._transition(order_id, allowed_from, status=new_status)

    def change_address(self, order_id: int, allowed_from: Iterable[str], new_address: str) -> OrderView:
        return self._transition(order_id, allowed_from, ship_address=new_address)

    # --- products ----------------------------------------------------------------

    def get_product(self, name: str) -> ProductView | None:
        self._check()
        found = next((p for p in self.rows.products.values() if p.name == name), None)
        return found or self.rows.products.get(self.rows.aliases.get(name, -1))

    def search_products(
        self,
        text: str | None = None,
        *,
        brand: str | None = None,
        category: str | None = None,
        max_price_cents: int | None = None,
        limit: int = 5,
    ) -> list[ProductView]:
        self._check()

        def matches(p: ProductView) -> bool:
            if text and not (
                text in p.name
                or text in (p.brand, p.category)
                or any(text in alias for alias, pid in self.rows.aliases.items() if pid == p.id)
            ):
                return False
            return (
                (not brand or p.brand == brand)
                and (not category or p.category == category)
                and (max_price_cents is None or p.price_cents <= max_price_cents)
            )

        found = [p for p in self.rows.products.values() if matches(p)]
        return sorted(found, key=lambda p: (p.stock <= 0, -p.price_cents, p.id))[:limit]

    def catalogue(self) -> CatalogueTerms:
        self._check()
        products = self.rows.products.values()
        return CatalogueTerms(
            products={
                p.name: tuple(sorted(a for a, pid in self.rows.aliases.items() if pid == p.id)) for p in products
            },
            brands=tuple(sorted({p.brand for p in products})),
            categories=tuple(sorted({p.category for p in products})),
            product_brand={p.name: p.brand for p in products},
            product_category={p.name: p.category for p in products},
        )

    # --- after-sales -------------------------------------------------------------

    def create_ticket(
        self,
        *,
        request_key: str,
        kind: str,
        order_id: int | None,
        customer_id: int | None,
        reason: str,
        conversation_id: str | None = None,
        product_id: int | None = None,
        status: str = "open",
    ) -> tuple[TicketView, bool]:
        with self.unit_of_work():
            existing = self.rows.ticket_keys.get(request_key)
            if existing is None and kind != "complaint" and order_id is not None:
                # The SQL repository's unique index uq_tickets_one_open_per_item.
                existing = next(
                    (
                        t.id
                        for t in sorted(self.rows.tickets.values(), key=lambda t: t.id)
                        if t.order_id == order_id
                        and t.kind == kind
                        and t.status in OPEN_TICKET_STATUSES
                        and (self.rows.ticket_products.get(t.id) or 0) == (product_id or 0)
                    ),
                    None,
                )
            if existing is not None:
                return self.rows.tickets[existing], False
            now = utcnow()
            ticket_id = max(self.rows.tickets, default=0) + 1
            ticket = TicketView(
                id=ticket_id,
                ticket_no=f"AS{now:%Y%m%d}{secrets.randbelow(10**8):08d}",
                order_id=order_id,
                customer_id=customer_id,
                kind=kind,
                reason=(reason or "")[:256],
                status=status,
                created_at=now,
            )
            self.rows.tickets[ticket_id] = ticket
            self.rows.ticket_keys[request_key] = ticket_id
            self.rows.ticket_products[ticket_id] = product_id
            return ticket, True

    def find_ticket(self, ticket_no: str) -> TicketView | None:
        self._check()
        return next((t for t in self.rows.tickets.values() if t.ticket_no == ticket_no), None)

    def tickets_of_customer(self, customer_id: int, limit: int = 5) -> list[TicketView]:
        self._check()
        mine = [t for t in self.rows.tickets.values() if t.customer_id == customer_id]
        return sorted(mine, key=lambda t: (t.created_at, t.id), reverse=True)[:limit]

    def tickets_of_order(self, order_id: int) -> list[TicketView]:
        self._check()
        mine = [t for t in self.rows.tickets.values() if t.order_id == order_id]
        return sorted(mine, key=lambda t: (t.created_at, t.id), reverse=True)

    # --- promotions and conversation records ----------------------------------------

    def active_promotions(self, at: datetime | None = None) -> list[PromotionView]:
        self._check()
        at = at or utcnow()
        return sorted(
            (p for p in self.rows.promotions if p.starts_at <= at < p.ends_at), key=lambda p: (p.kind, p.ends_at)
        )

    def record_rating(self, conversation_id: str, score: int, comment: str | None = None) -> int:
        if not 1 <= int(score) <= 5:
            raise ValueError(f"score must be 1-5, got {score}")
        with self.unit_of_work():
            self.rows.ratings.append(dict(conversation_id=conversation_id, score=int(score), comment=comment))
            return len(self.rows.ratings)

    def request_handoff(self, conversation_id: str, reason: str) -> tuple[int, bool]:
        with self.unit_of_work():
            for request_id, request in self.rows.handoffs.items():
                if request["conversation_id"] == conversation_id and request["status"] == "waiting":
                    return request_id, False
            request_id = len(self.rows.handoffs) + 1
            self.rows.handoffs[request_id] = dict(
                conversation_id=conversation_id, reason=reason[:64], status="waiting", created_at=utcnow()
            )
            return request_id, True

    def waiting_handoffs_before(self, request_id: int) -> int:
        self._check()
        return sum(1 for rid, r in self.rows.handoffs.items() if r["status"] == "waiting" and rid < request_id)

    def audit(self, conversation_id: str | None, action: str, order_id: int | None, outcome: str) -> None:
        with self.unit_of_work():
            self.rows.audit_log.append(
                dict(
                    happened_at=utcnow(),
                    conversation_id=conversation_id,
                    action=action[:64],
                    order_id=order_id,
                    outcome=outcome[:64],
                )
            )

    def count_audited(self, order_id: int, action: str, outcome: str, since: datetime) -> int:
        self._check()
        return sum(
            1
            for row in self.rows.audit_log
            if row["order_id"] == order_id
            and row["action"] == action
            and row["outcome"] == outcome
            and row["happened_at"] >= since
        )
