"""Plain, immutable views of shop rows.

The data-access interface returns these rather than ORM objects, so callers
never hold a session and a shop with its own order system can produce them
from anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class CustomerView:
    id: int
    name: str
    phone: str
    wechat_openid: str | None = None


@dataclass(frozen=True)
class OrderItemView:
    product_id: int
    product_name: str
    quantity: int
    unit_price_cents: int
    returnable: bool
    warranty_months: int
    category: str = ""
    size: str | None = None
    color: str | None = None


@dataclass(frozen=True)
class OrderView:
    id: int
    order_no: str
    customer_id: int
    status: str
    total_cents: int
    created_at: datetime
    paid_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    carrier: str | None
    tracking_no: str | None
    ship_name: str
    ship_phone: str
    ship_address: str
    items: tuple[OrderItemView, ...] = ()


@dataclass(frozen=True)
class ShipmentEventView:
    happened_at: datetime
    location: str
    description: str


@dataclass(frozen=True)
class ProductView:
    id: int
    sku: str
    name: str
    brand: str
    category: str
    price_cents: int
    stock: int
    warranty_months: int
    returnable: bool
    description: str
    sizes: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    specs: tuple[tuple[str, str], ...] = ()
    image_url: str = ""
    restock_at: datetime | None = None

    @property
    def in_stock(self) -> bool:
        return self.stock > 0


@dataclass(frozen=True)
class TicketView:
    id: int
    ticket_no: str
    order_id: int | None
    customer_id: int | None
    kind: str
    reason: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class PromotionView:
    kind: str
    title: str
    description: str
    code: str | None
    threshold_cents: int | None
    discount_cents: int | None
    category: str | None
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class CatalogueTerms:
    """Every name the NLU should recognise, mapped to the catalogue's own name."""

    products: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> aliases
    brands: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    product_brand: dict[str, str] = field(default_factory=dict)  # name -> brand
    product_category: dict[str, str] = field(default_factory=dict)  # name -> category
