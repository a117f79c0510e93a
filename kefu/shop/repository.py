"""The one data-access interface of the shop.

Custom actions and the shop service call a `ShopRepository`; nothing else
touches the database. `SqlShopRepository` implements it over SQLAlchemy for
SQLite and PostgreSQL. A shop with its own order system implements the same
abstract class and points ``KEFU_REPOSITORY`` at it (see ``get_repository``).

Every method opens its own short session, so one repository object is safe
to share between concurrent actions, unless it runs inside
``unit_of_work()``: then every call of that thread (or task) shares one
transaction, committed at the end or rolled back as a whole.

Errors: every storage failure is raised as ``ShopUnavailable``; a change
refused because the row moved on is ``StateConflict``. A shop's own
implementation raises the same two.
"""

from __future__ import annotations

import abc
import importlib
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from datetime import datetime
from functools import cache

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kefu.db.engine import LIKE_ESCAPE, escape_like, get_engine, insert_unless_exists, session_scope, utcnow
from kefu.db.models import (
    OPEN_TICKET_STATUSES,
    AftersalesTicket,
    AuditLog,
    Customer,
    HandoffRequest,
    Order,
    OrderItem,
    Product,
    ProductAlias,
    Promotion,
    SatisfactionRating,
    ShipmentEvent,
)
from kefu.shop.errors import ShopUnavailable, StateConflict
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

logger = logging.getLogger(__name__)

__all__ = ["ShopRepository", "SqlShopRepository", "ShopUnavailable", "StateConflict", "get_repository"]


class ShopRepository(abc.ABC):
    """What the bot needs from a shop's data. Implement this to plug in a shop.

    Raise ``ShopUnavailable`` for any failure of the storage behind it, and
    ``StateConflict`` where a method says so. ``kefu.shop.memory`` has a
    complete in-memory implementation to read as a reference.
    """

    def unit_of_work(self) -> AbstractContextManager[None]:
        """The calls made inside ``with repository.unit_of_work():`` succeed
        or fail together. The default gives no such guarantee (each call is
        its own transaction): implement it where the storage allows."""
        return nullcontext()

    # --- customers and verification
    @abc.abstractmethod
    def customer_by_id(self, customer_id: int) -> CustomerView | None: ...

    @abc.abstractmethod
    def customer_by_openid(self, openid: str) -> CustomerView | None: ...

    @abc.abstractmethod
    def verify_phone_tail(self, order_no: str, phone_tail: str) -> int | None:
        """The customer id owning `order_no` if `phone_tail` matches the
        customer's phone or the order's ship phone; None otherwise."""

    # --- orders
    @abc.abstractmethod
    def find_order(self, order_no: str) -> OrderView | None: ...

    @abc.abstractmethod
    def find_order_by_tracking_no(self, tracking_no: str) -> OrderView | None: ...

    @abc.abstractmethod
    def orders_of_customer(self, customer_id: int, limit: int = 5) -> list[OrderView]: ...

    @abc.abstractmethod
    def shipment_events(self, order_id: int, limit: int | None = None) -> list[ShipmentEventView]:
        """Newest first."""

    @abc.abstractmethod
    def cancel_order(self, order_id: int, allowed_from: Iterable[str], new_status: str) -> OrderView:
        """Move the order to `new_status` if it is still in `allowed_from`;
        raise StateConflict otherwise (checked and changed atomically)."""

    @abc.abstractmethod
    def change_address(self, order_id: int, allowed_from: Iterable[str], new_address: str) -> OrderView: ...

    # --- products
    @abc.abstractmethod
    def get_product(self, name: str) -> ProductView | None:
        """By the catalogue's own name (the value the NLU normalises to)."""

    @abc.abstractmethod
    def search_products(
        self,
        text: str | None = None,
        *,
        brand: str | None = None,
        category: str | None = None,
        max_price_cents: int | None = None,
        limit: int = 5,
    ) -> list[ProductView]:
        """Matching products, in stock first, then by price."""

    @abc.abstractmethod
    def catalogue(self) -> CatalogueTerms: ...

    # --- after-sales
    @abc.abstractmethod
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
        """Create a ticket once per `request_key`, and (but for complaints) at
        most one open ticket per order item and kind, whichever conversation
        asks: (ticket, created_now), the existing ticket when there is one.
        Both hold for concurrent callers (docs/shop.md)."""

    @abc.abstractmethod
    def find_ticket(self, ticket_no: str) -> TicketView | None: ...

    @abc.abstractmethod
    def tickets_of_customer(self, customer_id: int, limit: int = 5) -> list[TicketView]: ...

    @abc.abstractmethod
    def tickets_of_order(self, order_id: int) -> list[TicketView]: ...

    # --- promotions
    @abc.abstractmethod
    def active_promotions(self, at: datetime | None = None) -> list[PromotionView]: ...

    # --- conversation records
    @abc.abstractmethod
    def record_rating(self, conversation_id: str, score: int, comment: str | None = None) -> int: ...

    @abc.abstractmethod
    def request_handoff(self, conversation_id: str, reason: str) -> tuple[int, bool]:
        """(request id, created_now); a conversation already waiting keeps its request."""

    @abc.abstractmethod
    def waiting_handoffs_before(self, request_id: int) -> int:
        """How many requests wait ahead of this one (the queue position)."""

    @abc.abstractmethod
    def audit(self, conversation_id: str | None, action: str, order_id: int | None, outcome: str) -> None: ...

    @abc.abstractmethod
    def count_audited(self, order_id: int, action: str, outcome: str, since: datetime) -> int:
        """How many audit rows of `order_id` with this action and outcome were
        written since `since` (wrong phone tails across all conversations)."""


# --- SQL implementation -----------------------------------------------------


def _split(csv: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in (csv or "").split(",") if part.strip())


def _specs(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for chunk in (text or "").split(";"):
        if ":" in chunk:
            key, value = chunk.split(":", 1)
            pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def product_view(p: Product) -> ProductView:
    return ProductView(
        id=p.id,
        sku=p.sku,
        name=p.name,
        brand=p.brand,
        category=p.category,
        price_cents=p.price_cents,
        stock=p.stock,
        warranty_months=p.warranty_months,
        returnable=bool(p.returnable),
        description=p.description or "",
        sizes=_split(p.sizes),
        colors=_split(p.colors),
        specs=_specs(p.specs),
        image_url=p.image_url or "",
        restock_at=p.restock_at,
    )


# Orders are read as plain rows straight into views: building ORM objects
# for an order, its items and their products was most of a look-up's time
# (BENCHMARKS.md). Two queries: the orders, then their items with products.
_ORDER_COLUMNS = (
    Order.id,
    Order.order_no,
    Order.customer_id,
    Order.status,
    Order.total_cents,
    Order.created_at,
    Order.paid_at,
    Order.shipped_at,
    Order.delivered_at,
    Order.carrier,
    Order.tracking_no,
    Order.ship_name,
    Order.ship_phone,
    Order.ship_address,
)
_ITEM_COLUMNS = (
    OrderItem.order_id,
    OrderItem.product_id,
    Product.name,
    OrderItem.quantity,
    OrderItem.unit_price_cents,
    Product.returnable,
    Product.warranty_months,
    Product.category,
    OrderItem.size,
    OrderItem.color,
)


def _order_views(session, where, *, order_by=(), limit: int | None = None) -> list[OrderView]:
    stmt = select(*_ORDER_COLUMNS).where(where).order_by(*order_by)
    if limit:
        stmt = stmt.limit(limit)
    orders = session.execute(stmt).all()
    if not orders:
        return []
    items: dict[int, list[OrderItemView]] = {row.id: [] for row in orders}
    for row in session.execute(
        select(*_ITEM_COLUMNS)
        .join(Product, Product.id == OrderItem.product_id)
        .where(OrderItem.order_id.in_(list(items)))
        .order_by(OrderItem.id)
    ):
        items[row.order_id].append(
            OrderItemView(
                product_id=row.product_id,
                product_name=row.name,
                quantity=row.quantity,
                unit_price_cents=row.unit_price_cents,
                returnable=bool(row.returnable),
                warranty_months=row.warranty_months,
                category=row.category,
                size=row.size,
                color=row.color,
            )
        )
    return [OrderView(**row._mapping, items=tuple(items[row.id])) for row in orders]


def ticket_view(t: AftersalesTicket) -> TicketView:
    return TicketView(
        id=t.id,
        ticket_no=t.ticket_no,
        order_id=t.order_id,
        customer_id=t.customer_id,
        kind=t.kind,
        reason=t.reason or "",
        status=t.status,
        created_at=t.created_at,
    )


def customer_view(c: Customer) -> CustomerView:
    return CustomerView(id=c.id, name=c.name, phone=c.phone, wechat_openid=c.wechat_openid)


def new_ticket_no(now: datetime) -> str:
    # Date for the customer's eye, random tail so concurrent writers never collide.
    return f"AS{now:%Y%m%d}{secrets.randbelow(10**8):08d}"


class SqlShopRepository(ShopRepository):
    def __init__(self, engine: Engine | None = None):
        self._engine = engine
        # The session of the unit of work in progress in this thread or task.
        self._current: ContextVar[Session | None] = ContextVar(f"kefu_uow_{id(self)}", default=None)

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        if self._current.get() is not None:  # nested: part of the outer one
            yield
            return
        with session_scope(self.engine) as session:
            token = self._current.set(session)
            try:
                yield
            finally:
                self._current.reset(token)

    def _session(self) -> AbstractContextManager[Session]:
        current = self._current.get()
        return nullcontext(current) if current is not None else session_scope(self.engine)

    # customers
    def customer_by_id(self, customer_id: int) -> CustomerView | None:
        with self._session() as s:
            c = s.get(Customer, customer_id)
            return customer_view(c) if c else None

    def customer_by_openid(self, openid: str) -> CustomerView | None:
        with self._session() as s:
            c = s.execute(select(Customer).where(Customer.wechat_openid == openid)).scalar_one_or_none()
            return customer_view(c) if c else None

    def verify_phone_tail(self, order_no: str, phone_tail: str) -> int | None:
        if not (phone_tail and len(phone_tail) == 4 and phone_tail.isdigit()):
            return None
        with self._session() as s:
            row = s.execute(
                select(Order.customer_id, Order.ship_phone, Customer.phone)
                .join(Customer, Customer.id == Order.customer_id)
                .where(Order.order_no == order_no)
            ).first()
        if row is None:
            return None
        customer_id, ship_phone, phone = row
        if phone.endswith(phone_tail) or ship_phone.endswith(phone_tail):
            return customer_id
        return None

    # orders
    def find_order(self, order_no: str) -> OrderView | None:
        with self._session() as s:
            found = _order_views(s, Order.order_no == order_no)
            return found[0] if found else None

    def find_order_by_tracking_no(self, tracking_no: str) -> OrderView | None:
        with self._session() as s:
            found = _order_views(s, Order.tracking_no == tracking_no, limit=1)
            return found[0] if found else None

    def orders_of_customer(self, customer_id: int, limit: int = 5) -> list[OrderView]:
        with self._session() as s:
            return _order_views(
                s, Order.customer_id == customer_id, order_by=(Order.created_at.desc(), Order.id.desc()), limit=limit
            )

    def shipment_events(self, order_id: int, limit: int | None = None) -> list[ShipmentEventView]:
        with self._session() as s:
            stmt = (
                select(ShipmentEvent)
                .where(ShipmentEvent.order_id == order_id)
                .order_by(ShipmentEvent.happened_at.desc(), ShipmentEvent.id.desc())
            )
            if limit:
                stmt = stmt.limit(limit)
            return [ShipmentEventView(e.happened_at, e.location, e.description) for e in s.execute(stmt).scalars()]

    def _transition(self, order_id: int, allowed_from: Iterable[str], values: dict) -> OrderView:
        allowed = tuple(allowed_from)
        with self._session() as s:
            result = s.execute(
                update(Order)
                .where(Order.id == order_id, Order.status.in_(allowed))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                raise StateConflict(f"order {order_id} is not in {allowed}")
            return _order_views(s, Order.id == order_id)[0]

    def cancel_order(self, order_id: int, allowed_from: Iterable[str], new_status: str) -> OrderView:
        return self._transition(order_id, allowed_from, {"status": new_status})

    def change_address(self, order_id: int, allowed_from: Iterable[str], new_address: str) -> OrderView:
        return self._transition(order_id, allowed_from, {"ship_address": new_address})

    # products
    def get_product(self, name: str) -> ProductView | None:
        with self._session() as s:
            p = s.execute(select(Product).where(Product.name == name)).scalar_one_or_none()
            if p is None:
                p = s.execute(
                    select(Product).join(ProductAlias).where(ProductAlias.alias == name).limit(1)
                ).scalar_one_or_none()
            return product_view(p) if p else None

    def search_products(
        self,
        text: str | None = None,
        *,
        brand: str | None = None,
        category: str | None = None,
        max_price_cents: int | None = None,
        limit: int = 5,
    ) -> list[ProductView]:
        stmt = select(Product)
        if text:
            pattern = f"%{escape_like(text)}%"
            alias_match = select(ProductAlias.product_id).where(ProductAlias.alias.like(pattern, escape=LIKE_ESCAPE))
            stmt = stmt.where(
                or_(
                    Product.name.like(pattern, escape=LIKE_ESCAPE),
                    Product.brand == text,
                    Product.category == text,
                    Product.id.in_(alias_match),
                )
            )
        if brand:
            stmt = stmt.where(Product.brand == brand)
        if category:
            stmt = stmt.where(Product.category == category)
        if max_price_cents is not None:
            stmt = stmt.where(Product.price_cents <= max_price_cents)
        in_stock_first = case((Product.stock > 0, 0), else_=1)
        stmt = stmt.order_by(in_stock_first, Product.price_cents.desc(), Product.id).limit(limit)
        with self._session() as s:
            return [product_view(p) for p in s.execute(stmt).scalars()]

    def catalogue(self) -> CatalogueTerms:
        with self._session() as s:
            products = s.execute(select(Product.id, Product.name, Product.brand, Product.category)).all()
            aliases: dict[int, list[str]] = {}
            for product_id, alias in s.execute(select(ProductAlias.product_id, ProductAlias.alias)):
                aliases.setdefault(product_id, []).append(alias)
        return CatalogueTerms(
            products={name: tuple(sorted(aliases.get(pid, ()))) for pid, name, _, _ in products},
            brands=tuple(sorted({brand for _, _, brand, _ in products})),
            categories=tuple(sorted({category for _, _, _, category in products})),
            product_brand={name: brand for _, name, brand, _ in products},
            product_category={name: category for _, name, _, category in products},
        )

    # after-sales
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
        now = utcnow()
        values = dict(
            ticket_no=new_ticket_no(now),
            order_id=order_id,
            customer_id=customer_id,
            kind=kind,
            reason=(reason or "")[:256],
            status=status,
            created_at=now,
            request_key=request_key,
            conversation_id=conversation_id,
            product_id=product_id,
        )
        by_key = select(AftersalesTicket).where(AftersalesTicket.request_key == request_key)
        open_for_item = (
            select(AftersalesTicket)
            .where(
                AftersalesTicket.order_id == order_id,
                AftersalesTicket.kind == kind,
                func.coalesce(AftersalesTicket.product_id, 0) == (product_id or 0),
                AftersalesTicket.status.in_(OPEN_TICKET_STATUSES),
            )
            .order_by(AftersalesTicket.id)
            .limit(1)
        )
        with self._session() as s:
            for _ in range(3):
                existing = s.execute(by_key).scalar_one_or_none()
                if existing is None and kind != "complaint" and order_id is not None:
                    existing = s.execute(open_for_item).scalars().first()
                if existing is not None:
                    return ticket_view(existing), False
                # A concurrent request (the same one delivered twice, or another
                # conversation's for the same item) may win the insert: the
                # unique indexes decide, the conflict is skipped inside the
                # statement (a surrounding unit of work is not aborted) and the
                # winner's ticket is read above on the next pass.
                if insert_unless_exists(s, AftersalesTicket, values, None):
                    return ticket_view(s.execute(by_key).scalar_one()), True
                values["ticket_no"] = new_ticket_no(now)  # or the random ticket number collided
        raise ShopUnavailable(f"ticket for request {request_key} neither created nor found")

    def find_ticket(self, ticket_no: str) -> TicketView | None:
        with self._session() as s:
            t = s.execute(select(AftersalesTicket).where(AftersalesTicket.ticket_no == ticket_no)).scalar_one_or_none()
            return ticket_view(t) if t else None

    def tickets_of_customer(self, customer_id: int, limit: int = 5) -> list[TicketView]:
        with self._session() as s:
            rows = s.execute(
                select(AftersalesTicket)
                .where(AftersalesTicket.customer_id == customer_id)
                .order_by(AftersalesTicket.created_at.desc(), AftersalesTicket.id.desc())
                .limit(limit)
            ).scalars()
            return [ticket_view(t) for t in rows]

    def tickets_of_order(self, order_id: int) -> list[TicketView]:
        with self._session() as s:
            rows = s.execute(
                select(AftersalesTicket)
                .where(AftersalesTicket.order_id == order_id)
                .order_by(AftersalesTicket.created_at.desc(), AftersalesTicket.id.desc())
            ).scalars()
            return [ticket_view(t) for t in rows]

    # promotions
    def active_promotions(self, at: datetime | None = None) -> list[PromotionView]:
        at = at or utcnow()
        with self._session() as s:
            rows = s.execute(
                select(Promotion)
                .where(and_(Promotion.starts_at <= at, Promotion.ends_at > at))
                .order_by(Promotion.kind, Promotion.ends_at)
            ).scalars()
            return [
                PromotionView(
                    p.kind,
                    p.title,
                    p.description,
                    p.code,
                    p.threshold_cents,
                    p.discount_cents,
                    p.category,
                    p.starts_at,
                    p.ends_at,
                )
                for p in rows
            ]

    # conversation records
    def record_rating(self, conversation_id: str, score: int, comment: str | None = None) -> int:
        if not 1 <= int(score) <= 5:
            raise ValueError(f"score must be 1-5, got {score}")
        with self._session() as s:
            rating = SatisfactionRating(
                conversation_id=conversation_id,
                score=int(score),
                comment=(comment or None) and comment[:500],
                created_at=utcnow(),
            )
            s.add(rating)
            s.flush()
            return rating.id

    def request_handoff(self, conversation_id: str, reason: str) -> tuple[int, bool]:
        with self._session() as s:
            waiting = s.execute(
                select(HandoffRequest.id).where(
                    HandoffRequest.conversation_id == conversation_id, HandoffRequest.status == "waiting"
                )
            ).scalar()
            if waiting is not None:
                return waiting, False
            request = HandoffRequest(
                conversation_id=conversation_id, reason=reason[:64], status="waiting", created_at=utcnow()
            )
            s.add(request)
            s.flush()
            return request.id, True

    def waiting_handoffs_before(self, request_id: int) -> int:
        with self._session() as s:
            return s.execute(
                select(func.count(HandoffRequest.id)).where(
                    HandoffRequest.status == "waiting", HandoffRequest.id < request_id
                )
            ).scalar_one()

    def count_audited(self, order_id: int, action: str, outcome: str, since: datetime) -> int:
        with self._session() as s:
            return s.execute(
                select(func.count(AuditLog.id)).where(
                    AuditLog.order_id == order_id,
                    AuditLog.action == action,
                    AuditLog.outcome == outcome,
                    AuditLog.happened_at >= since,
                )
            ).scalar_one()

    def audit(self, conversation_id: str | None, action: str, order_id: int | None, outcome: str) -> None:
        with self._session() as s:
            s.add(
                AuditLog(
                    happened_at=utcnow(),
                    conversation_id=conversation_id,
                    action=action[:64],
                    order_id=order_id,
                    outcome=outcome[:64],
                )
            )


@cache
def get_repository() -> ShopRepository:
    """The configured repository: ``KEFU_REPOSITORY=package.module:ClassName``
    for a shop's own implementation, else the SQL one over DATABASE_URL."""
    target = os.environ.get("KEFU_REPOSITORY", "").strip()
    if not target:
        return SqlShopRepository()
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not issubclass(cls, ShopRepository):
        raise TypeError(f"KEFU_REPOSITORY={target} is not a ShopRepository")
    return cls()
