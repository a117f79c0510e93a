"""SQLAlchemy models of the shop database.

The table and column names listed in docs/shop.md are a contract read
by outside tools; extra tables and columns are ours. Money is integer cents,
times are naive UTC datetimes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import declarative_base, relationship

from kefu.shop.requests import TicketKind

# Any: SQLAlchemy 1.4's declarative base is not a type mypy can check.
Base: Any = declarative_base()

ORDER_STATUSES = (
    "pending_payment",
    "paid",
    "shipped",
    "delivered",
    "completed",
    "cancelled",
    "refunding",
    "refunded",
)
TICKET_KINDS = tuple(kind.value for kind in TicketKind)
TICKET_STATUSES = ("open", "approved", "rejected", "in_progress", "closed")
# A ticket in one of these is still being handled: a second request for the
# same order item and kind is that ticket (uq_tickets_one_open_per_item).
OPEN_TICKET_STATUSES = ("open", "approved", "in_progress")
HANDOFF_STATUSES = ("waiting", "taken", "closed")


def _in(column: str, values: tuple) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class Customer(Base):
    __tablename__ = "customers"

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False)
    phone = Column(String(11), nullable=False, index=True)
    wechat_openid = Column(String(64), nullable=True, unique=True)
    created_at = Column(DateTime, nullable=False)

    orders = relationship("Order", back_populates="customer")


class Product(Base):
    __tablename__ = "products"

    id = Column(Integer, primary_key=True)
    sku = Column(String(32), nullable=False, unique=True)
    name = Column(String(128), nullable=False, unique=True)
    brand = Column(String(64), nullable=False, index=True)
    category = Column(String(32), nullable=False, index=True)
    price_cents = Column(Integer, nullable=False)
    stock = Column(Integer, nullable=False, default=0)
    warranty_months = Column(Integer, nullable=False, default=0)
    returnable = Column(Boolean, nullable=False, default=True)
    description = Column(Text, nullable=False, default="")
    # Ours: shown by the spec and recommendation flows.
    sizes = Column(String(128), nullable=False, default="")  # comma-separated
    colors = Column(String(128), nullable=False, default="")  # comma-separated
    specs = Column(Text, nullable=False, default="")  # "key:value;key:value"
    image_url = Column(String(256), nullable=False, default="")
    restock_at = Column(DateTime, nullable=True)

    aliases = relationship("ProductAlias", back_populates="product", cascade="all, delete-orphan")

    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="ck_products_price"),
        CheckConstraint("stock >= 0", name="ck_products_stock"),
        Index("ix_products_category_price", "category", "price_cents"),
    )


class ProductAlias(Base):
    """Other names shoppers use for a product (小米13 → 小米13 Pro, 苹果15 → iPhone 15)."""

    __tablename__ = "product_aliases"

    id = Column(Integer, primary_key=True)
    product_id = Column(Integer, ForeignKey("products.id", ondelete="CASCADE"), nullable=False, index=True)
    alias = Column(String(128), nullable=False, index=True)

    product = relationship("Product", back_populates="aliases")
    __table_args__ = (UniqueConstraint("product_id", "alias", name="uq_product_alias"),)


class Order(Base):
    __tablename__ = "orders"

    id = Column(Integer, primary_key=True)
    order_no = Column(String(32), nullable=False, unique=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False, index=True)
    status = Column(String(20), nullable=False)
    total_cents = Column(Integer, nullable=False)
    created_at = Column(DateTime, nullable=False)
    paid_at = Column(DateTime, nullable=True)
    shipped_at = Column(DateTime, nullable=True)
    delivered_at = Column(DateTime, nullable=True)
    carrier = Column(String(32), nullable=True)
    tracking_no = Column(String(32), nullable=True, index=True)
    ship_name = Column(String(64), nullable=False)
    ship_phone = Column(String(11), nullable=False)
    ship_address = Column(String(256), nullable=False)

    customer = relationship("Customer", back_populates="orders")
    items = relationship("OrderItem", back_populates="order", cascade="all, delete-orphan")
    events = relationship(
        "ShipmentEvent",
        back_populates="order",
        cascade="all, delete-orphan",
        order_by="ShipmentEvent.happened_at",
    )

    __table_args__ = (
        CheckConstraint(_in("status", ORDER_STATUSES), name="ck_orders_status"),
        # A customer's recent orders, newest first.
        Index("ix_orders_customer_created", "customer_id", "created_at"),
    )


class OrderItem(Base):
    __tablename__ = "order_items"

    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True)
    product_id = Column(Integer, ForeignKey("products.id"), nullable=False, index=True)
    quantity = Column(Integer, nullable=False)
    unit_price_cents = Column(Integer, nullable=False)
    # Ours: the size/colour chosen, for exchanges.
    size = Column(String(16), nullable=True)
    color = Column(String(16), nullable=True)

    order = relationship("Order", back_populates="items")
    product = relationship("Product")


class ShipmentEvent(Base):
    __tablename__ = "shipment_events"

    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False)
    happened_at = Column(DateTime, nullable=False)
    location = Column(String(64), nullable=False)
    description = Column(String(256), nullable=False)

    order = relationship("Order", back_populates="events")
    __table_args__ = (Index("ix_shipment_events_order_time", "order_id", "happened_at"),)


class AftersalesTicket(Base):
    __tablename__ = "aftersales_tickets"

    id = Column(Integer, primary_key=True)
    ticket_no = Column(String(32), nullable=False, unique=True)
    order_id = Column(Integer, ForeignKey("orders.id"), nullable=True, index=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=True, index=True)
    kind = Column(String(16), nullable=False)
    reason = Column(String(256), nullable=False, default="")
    status = Column(String(16), nullable=False, default="open")
    created_at = Column(DateTime, nullable=False)
    # Ours: makes creation idempotent. The same request delivered twice
    # carries the same key, and the unique constraint turns the second
    # insert into a look-up of the first ticket.
    request_key = Column(String(128), nullable=True, unique=True)
    conversation_id = Column(String(128), nullable=True, index=True)
    product_id = Column(Integer, ForeignKey("products.id"), nullable=True)
    updated_at = Column(DateTime, nullable=True)

    __table_args__ = (
        CheckConstraint(_in("kind", TICKET_KINDS), name="ck_tickets_kind"),
        CheckConstraint(_in("status", TICKET_STATUSES), name="ck_tickets_status"),
    )


# One open ticket per order item and kind, whichever conversation asks: the
# request key above names a conversation's request, so two conversations
# (two replicas, two action servers) filing the same return at the same
# moment would each insert one. This index makes the second insert a no-op
# in the database itself. Complaints are each their own; a ticket closed or
# rejected does not stop a new request. product_id is NULL for a refund of
# the whole order, hence coalesce (NULLs never collide in a unique index).
OPEN_TICKET_WHERE = text(f"{_in('status', OPEN_TICKET_STATUSES)} AND kind <> 'complaint'")
ONE_OPEN_TICKET_PER_ITEM = Index(
    "uq_tickets_one_open_per_item",
    AftersalesTicket.order_id,
    AftersalesTicket.kind,
    func.coalesce(AftersalesTicket.product_id, 0),
    unique=True,
    sqlite_where=OPEN_TICKET_WHERE,
    postgresql_where=OPEN_TICKET_WHERE,
)


class SatisfactionRating(Base):
    __tablename__ = "satisfaction_ratings"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(128), nullable=False, index=True)
    score = Column(Integer, nullable=False)
    comment = Column(Text, nullable=True)
    created_at = Column(DateTime, nullable=False)
    # Ours: the agent who served the conversation just before it was rated.
    staff_id = Column(Integer, ForeignKey("staff_accounts.id"), nullable=True, index=True)

    __table_args__ = (CheckConstraint("score BETWEEN 1 AND 5", name="ck_ratings_score"),)


class HandoffRequest(Base):
    __tablename__ = "handoff_requests"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(128), nullable=False, index=True)
    reason = Column(String(64), nullable=False)
    status = Column(String(16), nullable=False, default="waiting")
    created_at = Column(DateTime, nullable=False)
    # Ours, for the agent console: who holds the conversation and since when
    # ("taken"), when it was handed back ("closed"), and when the one polite
    # "still waiting" update went out to a customer nobody claimed.
    claimed_by = Column(Integer, ForeignKey("staff_accounts.id"), nullable=True, index=True)
    claimed_at = Column(DateTime, nullable=True)
    closed_at = Column(DateTime, nullable=True)
    reminded_at = Column(DateTime, nullable=True)
    # The customer was told nobody is available and may leave a message (留言).
    left_message = Column(Boolean, nullable=False, default=False)

    __table_args__ = (
        CheckConstraint(_in("status", HANDOFF_STATUSES), name="ck_handoff_status"),
        Index("ix_handoff_status_created", "status", "created_at"),
    )


class AuditLog(Base):
    __tablename__ = "audit_log"

    id = Column(Integer, primary_key=True)
    happened_at = Column(DateTime, nullable=False)
    conversation_id = Column(String(128), nullable=True, index=True)
    action = Column(String(64), nullable=False)
    order_id = Column(Integer, nullable=True, index=True)
    outcome = Column(String(64), nullable=False)
    # Ours: the console user who looked (NULL when the bot did).
    staff_id = Column(Integer, nullable=True, index=True)

    # Wrong phone tails of one order across all conversations are counted
    # from here (the look-up lock), so that count must stay an index read.
    __table_args__ = (Index("ix_audit_log_order_action_time", "order_id", "action", "happened_at"),)


class Promotion(Base):
    """Campaigns and coupons; the bot lists those active at the moment asked."""

    __tablename__ = "promotions"

    id = Column(Integer, primary_key=True)
    kind = Column(String(16), nullable=False)  # campaign | coupon
    title = Column(String(128), nullable=False)
    description = Column(String(256), nullable=False, default="")
    code = Column(String(32), nullable=True)
    threshold_cents = Column(Integer, nullable=True)
    discount_cents = Column(Integer, nullable=True)
    category = Column(String(32), nullable=True)
    starts_at = Column(DateTime, nullable=False)
    ends_at = Column(DateTime, nullable=False)

    __table_args__ = (Index("ix_promotions_window", "starts_at", "ends_at"),)


STAFF_ROLES = ("agent", "admin")


class StaffAccount(Base):
    """A person who signs in to the agent console (客服工作台)."""

    __tablename__ = "staff_accounts"

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False, unique=True)
    role = Column(String(16), nullable=False, default="agent")
    # "scrypt$n$r$p$salt_hex$hash_hex" (kefu.console.auth)
    password_hash = Column(String(256), nullable=False)
    failed_logins = Column(Integer, nullable=False, default=0)
    locked_until = Column(DateTime, nullable=True)
    # Refreshed while the console is open: "is anybody available" reads it.
    last_seen_at = Column(DateTime, nullable=True)
    created_at = Column(DateTime, nullable=False)
    disabled = Column(Boolean, nullable=False, default=False)

    __table_args__ = (CheckConstraint(_in("role", STAFF_ROLES), name="ck_staff_role"),)


class StaffSession(Base):
    """A signed-in browser. Only a hash of the cookie's token is stored."""

    __tablename__ = "staff_sessions"

    id = Column(Integer, primary_key=True)
    token_hash = Column(String(64), nullable=False, unique=True)
    staff_id = Column(Integer, ForeignKey("staff_accounts.id", ondelete="CASCADE"), nullable=False, index=True)
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=False)


class ConversationMessage(Base):
    """What an agent said in a conversation, and customer messages left while
    nobody was available (留言); the rest of a transcript is Rasa's tracker."""

    __tablename__ = "conversation_messages"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(128), nullable=False, index=True)
    handoff_id = Column(Integer, ForeignKey("handoff_requests.id"), nullable=True, index=True)
    sender = Column(String(16), nullable=False)  # customer | agent
    staff_id = Column(Integer, ForeignKey("staff_accounts.id"), nullable=True)
    text = Column(Text, nullable=False)
    created_at = Column(DateTime, nullable=False)

    __table_args__ = (CheckConstraint(_in("sender", ("customer", "agent")), name="ck_conv_message_sender"),)


class CustomerNote(Base):
    """A note an agent keeps about a customer (or an anonymous conversation)."""

    __tablename__ = "customer_notes"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=True, index=True)
    conversation_id = Column(String(128), nullable=False, index=True)
    staff_id = Column(Integer, ForeignKey("staff_accounts.id"), nullable=False)
    text = Column(Text, nullable=False)
    created_at = Column(DateTime, nullable=False)


class CustomerTag(Base):
    __tablename__ = "customer_tags"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=True, index=True)
    conversation_id = Column(String(128), nullable=False, index=True)
    tag = Column(String(32), nullable=False)
    staff_id = Column(Integer, ForeignKey("staff_accounts.id"), nullable=False)
    created_at = Column(DateTime, nullable=False)

    __table_args__ = (UniqueConstraint("conversation_id", "tag", name="uq_customer_tag"),)


class CannedReply(Base):
    """常用语: a reply agents insert with a click or a /shortcut."""

    __tablename__ = "canned_replies"

    id = Column(Integer, primary_key=True)
    shortcut = Column(String(32), nullable=False, unique=True)
    text = Column(Text, nullable=False)
    updated_at = Column(DateTime, nullable=False)


class FaqAnswer(Base):
    """An admin's text for one FAQ answer (the key of a domain response
    utter_faq/<key>). Only edited answers have a row: the domain's text is
    the default, so a better default written in domain/ still reaches every
    answer nobody edited."""

    __tablename__ = "faq_answers"

    key = Column(String(64), primary_key=True)
    text = Column(Text, nullable=False)
    updated_at = Column(DateTime, nullable=False)
    updated_by = Column(Integer, nullable=True)  # staff_accounts.id


class SchemaVersion(Base):
    """One row: the schema version this database was created or migrated to."""

    __tablename__ = "kefu_schema_version"

    id = Column(Integer, primary_key=True)
    version = Column(Integer, nullable=False)
    applied_at = Column(DateTime, nullable=False)


# --- notices: consent, outbox, campaigns (kefu/notices/) ------------------------

NOTICE_KINDS = ("service", "marketing")
NOTICE_STATUSES = ("pending", "sending", "sent", "delivered", "skipped", "failed", "cancelled")
CAMPAIGN_STATUSES = ("scheduled", "expanding", "sending", "done", "cancelled")


class NoticeConsent(Base):
    """A customer's current yes/no for one kind of notice. No row means the
    default: service notices on, marketing off."""

    __tablename__ = "notice_consents"

    customer_id = Column(Integer, ForeignKey("customers.id"), primary_key=True)
    kind = Column(String(16), primary_key=True)
    granted = Column(Boolean, nullable=False)
    channel = Column(String(16), nullable=False)  # web | wechat | console | api
    changed_at = Column(DateTime, nullable=False)

    __table_args__ = (
        CheckConstraint(_in("kind", NOTICE_KINDS), name="ck_notice_consent_kind"),
        # The campaign audience reads "opted in to marketing" for every customer.
        Index("ix_notice_consents_kind_granted", "kind", "granted", "customer_id"),
    )


class NoticeConsentChange(Base):
    """Every change of consent, with when and through which channel: kept for
    as long as the customer is (the proof of an opt-in)."""

    __tablename__ = "notice_consent_history"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False, index=True)
    kind = Column(String(16), nullable=False)
    granted = Column(Boolean, nullable=False)
    channel = Column(String(16), nullable=False)
    conversation_id = Column(String(128), nullable=True)
    changed_at = Column(DateTime, nullable=False)

    __table_args__ = (CheckConstraint(_in("kind", NOTICE_KINDS), name="ck_notice_consent_history_kind"),)


class Campaign(Base):
    """A marketing push (营销活动推广) of one promotion to an audience rule."""

    __tablename__ = "notice_campaigns"

    id = Column(Integer, primary_key=True)
    promotion_id = Column(Integer, ForeignKey("promotions.id"), nullable=False)
    # JSON: {"tag": ..., "category": ..., "days": ..., "unpaid": bool}
    audience = Column(Text, nullable=False, default="{}")
    message = Column(Text, nullable=False)
    status = Column(String(16), nullable=False, default="scheduled")
    send_at = Column(DateTime, nullable=False)
    created_by = Column(Integer, ForeignKey("staff_accounts.id"), nullable=True)
    created_at = Column(DateTime, nullable=False)
    expanded_at = Column(DateTime, nullable=True)
    cancelled_at = Column(DateTime, nullable=True)
    audience_count = Column(Integer, nullable=True)

    __table_args__ = (
        CheckConstraint(_in("status", CAMPAIGN_STATUSES), name="ck_campaign_status"),
        Index("ix_campaign_status_send_at", "status", "send_at"),
    )


class Notice(Base):
    """The outbox: one row per notice to one customer. `notice_key` makes it
    one per event per customer whatever retries or restarts happen."""

    __tablename__ = "notices"

    id = Column(Integer, primary_key=True)
    notice_key = Column(String(160), nullable=False, unique=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False, index=True)
    kind = Column(String(16), nullable=False)  # service | marketing
    topic = Column(String(32), nullable=False)  # shipment | unpaid | ticket | campaign | external
    campaign_id = Column(Integer, ForeignKey("notice_campaigns.id"), nullable=True, index=True)
    order_id = Column(Integer, nullable=True)
    # JSON list of chat messages ({"text": ..., "buttons": [...]}), rendered
    # from domain/notices.yml when the row is made.
    body = Column(Text, nullable=False)
    status = Column(String(16), nullable=False, default="pending")
    reason = Column(String(64), nullable=True)  # why skipped or failed
    channel = Column(String(16), nullable=True)  # web | wechat, chosen at sending
    attempts = Column(Integer, nullable=False, default=0)
    created_at = Column(DateTime, nullable=False)
    not_before = Column(DateTime, nullable=False)
    lease_until = Column(DateTime, nullable=True)  # a worker is sending it until then
    claim_token = Column(String(32), nullable=True)  # which claim took it (a batch's rows are read back by it)
    # When a job for it was last put on the queue: the sweep re-queues only
    # notices whose job was lost (a worker killed, a restart of Redis).
    queued_at = Column(DateTime, nullable=True)
    sent_at = Column(DateTime, nullable=True)
    delivered_at = Column(DateTime, nullable=True)
    clicked_at = Column(DateTime, nullable=True)

    __table_args__ = (
        CheckConstraint(_in("kind", NOTICE_KINDS), name="ck_notice_kind"),
        CheckConstraint(_in("status", NOTICE_STATUSES), name="ck_notice_status"),
        # The worker's sweep: what is due and not yet sent.
        Index("ix_notices_status_not_before", "status", "not_before"),
        # The chat page at open: what was kept for this customer.
        Index("ix_notices_customer_status", "customer_id", "status"),
        # kefu.web's relay: what was sent in the last seconds.
        Index("ix_notices_status_sent_at", "status", "sent_at"),
    )


class NoticeAttempt(Base):
    """Every try at sending a notice, whatever its outcome (the send log)."""

    __tablename__ = "notice_attempts"

    id = Column(Integer, primary_key=True)
    notice_id = Column(Integer, ForeignKey("notices.id"), nullable=False, index=True)
    happened_at = Column(DateTime, nullable=False)
    channel = Column(String(16), nullable=False)
    address = Column(String(128), nullable=True)  # the WeChat openid; NULL on the web
    outcome = Column(String(16), nullable=False)  # sent | kept | skipped | retry | failed
    detail = Column(String(256), nullable=False, default="")

    __table_args__ = (Index("ix_notice_attempts_address_time", "address", "happened_at"),)


class WeChatContact(Base):
    """When a WeChat follower last wrote: the customer-service message API
    may answer for 48 hours after that, at most 5 messages."""

    __tablename__ = "wechat_contacts"

    openid = Column(String(64), primary_key=True)
    last_message_at = Column(DateTime, nullable=False)


class WeChatWindowSlot(Base):
    """One of the 5 messages WeChat allows in a follower's 48-hour window,
    taken before the message is sent. The primary key makes the limit hold
    in the database: two senders at once cannot take the same slot, and
    there are only 5 (schema step 7). A window is named by the
    follower's last_message_at; when they write again, a new one starts."""

    __tablename__ = "wechat_window_slots"

    openid = Column(String(64), primary_key=True)
    window_start = Column(DateTime, primary_key=True)
    slot = Column(Integer, primary_key=True)
    notice_id = Column(Integer, ForeignKey("notices.id"), nullable=False)
    taken_at = Column(DateTime, nullable=False)

    __table_args__ = (
        CheckConstraint("slot BETWEEN 1 AND 5", name="ck_wechat_window_slot_range"),
        # A notice retried in the same window keeps its slot.
        UniqueConstraint("openid", "window_start", "notice_id", name="uq_wechat_window_slot_notice"),
    )


class NoticeCursor(Base):
    """High-water marks of the trigger polls (last shipment event id seen…)."""

    __tablename__ = "notice_cursors"

    name = Column(String(64), primary_key=True)
    value = Column(Integer, nullable=False, default=0)
    moment = Column(DateTime, nullable=True)
