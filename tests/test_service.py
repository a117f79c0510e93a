"""Service rules of docs/shop.md, as pure functions and through the
service layer against a seeded SQLite database (the real data layer)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from kefu.db.engine import session_scope
from kefu.db.models import AftersalesTicket, AuditLog
from kefu.shop import rules
from kefu.shop.demo import showcase
from kefu.shop.service import OrderService, Verification, request_key
from kefu.shop.tokens import sign_customer_token, verify_customer_token
from kefu.shop.views import OrderItemView, OrderView

NOW = datetime(2026, 11, 24, 12, 0, 0)
CASES = showcase()


def make_order(
    status="delivered", delivered_days=None, returnable=True, warranty=12
) -> tuple[OrderView, OrderItemView]:
    item = OrderItemView(
        product_id=1,
        product_name="测试商品",
        quantity=1,
        unit_price_cents=100,
        returnable=returnable,
        warranty_months=warranty,
    )
    delivered = NOW - timedelta(days=delivered_days) if delivered_days is not None else None
    order = OrderView(
        id=1,
        order_no="2026000000009999",
        customer_id=1,
        status=status,
        total_cents=100,
        created_at=NOW - timedelta(days=30),
        paid_at=None,
        shipped_at=None,
        delivered_at=delivered,
        carrier=None,
        tracking_no=None,
        ship_name="张三",
        ship_phone="13800138000",
        ship_address="北京市朝阳区建国路1号",
        items=(item,),
    )
    return order, item


@pytest.mark.parametrize(
    "status, allowed",
    [
        ("pending_payment", True),
        ("paid", True),
        ("shipped", False),
        ("delivered", False),
        ("completed", False),
        ("cancelled", False),
        ("refunding", False),
        ("refunded", False),
    ],
)
def test_cancel_and_change_address_only_before_shipping(status, allowed):
    order, _ = make_order(status)
    assert bool(rules.can_cancel(order)) is allowed
    assert bool(rules.can_change_address(order)) is allowed


def test_a_paid_order_is_cancelled_by_refunding_it():
    assert rules.status_after_cancel(make_order("paid")[0]) == "refunding"
    assert rules.status_after_cancel(make_order("pending_payment")[0]) == "cancelled"


@pytest.mark.parametrize(
    "days, returnable, reason, allowed, rule",
    [
        (2, True, "不喜欢", True, "return_ok"),
        (7, True, "不喜欢", True, "return_ok"),
        (7.01, True, "不喜欢", False, "return_window"),
        (10, True, "质量问题", False, "return_window"),
        (2, False, "不喜欢", False, "return_not_returnable"),
        (2, False, "质量问题", True, "return_ok"),
        (None, True, "不喜欢", False, "return_not_delivered"),
    ],
)
def test_return_rules(days, returnable, reason, allowed, rule):
    order, item = make_order("delivered" if days is not None else "shipped", days, returnable)
    decision = rules.can_return(order, item, reason, NOW)
    assert (decision.allowed, decision.rule) == (allowed, rule)


@pytest.mark.parametrize(
    "days, returnable, reason, allowed, rule",
    [
        (10, True, "尺码不合适", True, "exchange_ok"),
        (15, True, "质量问题", True, "exchange_ok"),
        (15.01, True, "质量问题", False, "exchange_window"),
        (5, False, "尺码不合适", False, "exchange_not_returnable"),
        (5, False, "质量问题", True, "exchange_ok"),
        (5, True, "不喜欢", False, "exchange_reason"),
        (None, True, "质量问题", False, "exchange_not_delivered"),
    ],
)
def test_exchange_rules(days, returnable, reason, allowed, rule):
    order, item = make_order("delivered" if days is not None else "paid", days, returnable)
    decision = rules.can_exchange(order, item, reason, NOW)
    assert (decision.allowed, decision.rule) == (allowed, rule)


@pytest.mark.parametrize(
    "days, warranty, allowed, rule",
    [
        (100, 12, True, "repair_ok"),
        (359, 12, True, "repair_ok"),
        (361, 12, False, "repair_warranty_expired"),
        (400, 12, False, "repair_warranty_expired"),
        (5, 0, False, "repair_no_warranty"),
        (None, 12, False, "repair_not_delivered"),
    ],
)
def test_repair_rules(days, warranty, allowed, rule):
    order, item = make_order("completed" if days is not None else "shipped", days, warranty=warranty)
    decision = rules.can_repair(order, item, NOW)
    assert (decision.allowed, decision.rule) == (allowed, rule)


@pytest.mark.parametrize(
    "status, approved_return, allowed, rule",
    [
        ("paid", False, True, "refund_cancel_unshipped"),
        ("delivered", True, True, "refund_after_return"),
        ("delivered", False, False, "refund_needs_return"),
        ("shipped", False, False, "refund_needs_return"),
        ("refunding", False, False, "refund_in_progress"),
        ("refunded", False, False, "refund_done"),
        ("pending_payment", False, False, "refund_unpaid"),
        ("cancelled", False, False, "refund_cancelled_order"),
    ],
)
def test_refund_rules(status, approved_return, allowed, rule):
    decision = rules.can_refund(make_order(status, 3)[0], approved_return)
    assert (decision.allowed, decision.rule) == (allowed, rule)


def test_customer_tokens(monkeypatch):
    token = sign_customer_token(42, secret="s3cret", now=1000)
    assert verify_customer_token(token, secret="s3cret", now=1001) == 42
    assert verify_customer_token(token, secret="s3cret", now=1000 + 3601) is None  # expired
    assert verify_customer_token(token, secret="other", now=1001) is None
    forged = token.replace("kefu1.42.", "kefu1.43.")
    assert verify_customer_token(forged, secret="s3cret", now=1001) is None
    for junk in (None, "", "kefu1", "a.b.c.d", 42, "x" * 1000):
        assert verify_customer_token(junk, secret="s3cret") is None
    monkeypatch.delenv("KEFU_TOKEN_SECRET", raising=False)
    assert verify_customer_token(token) is None  # no secret configured: tokens are refused


# --- through the service and the real data layer ----------------------------------


@pytest.fixture()
def service(sqlite_repository):
    return OrderService(sqlite_repository)


def _tickets(repository, conversation):
    with session_scope(repository.engine) as session:
        return session.execute(select(func.count()).where(AftersalesTicket.conversation_id == conversation)).scalar()


def _audits(repository, conversation):
    with session_scope(repository.engine) as session:
        return session.execute(
            select(AuditLog.action, AuditLog.outcome)
            .where(AuditLog.conversation_id == conversation)
            .order_by(AuditLog.id)
        ).all()


def test_every_lookup_is_audited_and_other_customers_orders_are_not_found(service, sqlite_repository):
    conversation = f"c-{uuid.uuid4()}"
    order = service.find_order(conversation, CASES["li_delivered_5d"]["order_no"])
    assert order is not None
    assert service.find_order(conversation, "9999999999999999") is None
    wang = sqlite_repository.find_order(CASES["delivered_2d"]["order_no"]).customer_id
    assert service.order_of_customer(conversation, order.order_no, wang) is None
    assert service.verify_phone_tail(conversation, order, "0000") is Verification.WRONG_TAIL
    assert service.verify_phone_tail(conversation, order, "5678") is Verification.VERIFIED
    assert service.find_order_by_tracking_no(conversation, order.tracking_no) == order
    assert _audits(sqlite_repository, conversation) == [
        ("find_order", "found"),
        ("find_order", "not_found"),
        ("find_order", "other_customer"),
        ("verify_phone_tail", "wrong_tail"),
        ("verify_phone_tail", "verified"),
        ("find_order_by_tracking_no", "found"),
    ]


def test_return_creates_one_ticket_even_when_confirmed_twice(service, sqlite_repository):
    conversation = f"c-{uuid.uuid4()}"
    order = sqlite_repository.find_order(CASES["delivered_2d"]["order_no"])
    first = service.submit_aftersales(conversation, "return", order, order.items[0], "不喜欢")
    second = service.submit_aftersales(conversation, "return", order, order.items[0], "不喜欢")
    assert first.decision and first.ticket_created and not second.ticket_created
    assert first.ticket.ticket_no == second.ticket.ticket_no
    assert _tickets(sqlite_repository, conversation) == 1


@pytest.mark.parametrize(
    "case, kind, reason, rule",
    [
        ("delivered_10d", "return", "不喜欢", "return_window"),
        ("delivered_2d_custom", "return", "不喜欢", "return_not_returnable"),
        ("delivered_400d", "repair", "屏幕坏了", "repair_warranty_expired"),
        ("shipped", "exchange", "质量问题", "exchange_not_delivered"),
    ],
)
def test_refused_requests_name_the_rule_and_create_no_ticket(service, sqlite_repository, case, kind, reason, rule):
    conversation = f"c-{uuid.uuid4()}"
    order = sqlite_repository.find_order(CASES[case]["order_no"])
    outcome = service.submit_aftersales(conversation, kind, order, order.items[0], reason)
    assert not outcome.decision and outcome.decision.rule == rule and outcome.ticket is None
    assert _tickets(sqlite_repository, conversation) == 0


def test_allowed_requests(service, sqlite_repository):
    conversation = f"c-{uuid.uuid4()}"
    custom = sqlite_repository.find_order(CASES["delivered_2d_custom"]["order_no"])
    assert service.submit_aftersales(conversation, "return", custom, custom.items[0], "质量问题").ticket_created
    old = sqlite_repository.find_order(CASES["delivered_100d"]["order_no"])
    assert service.submit_aftersales(conversation, "repair", old, old.items[0], "开不了机").ticket_created
    shirt = sqlite_repository.find_order(CASES["delivered_10d"]["order_no"])
    assert service.submit_aftersales(conversation, "exchange", shirt, shirt.items[0], "尺码不合适").ticket_created
    assert service.complaint(conversation, None, None, "服务太差").ticket_created


def test_cancel_paid_order_refunds_and_cancel_twice_is_refused(tmp_path):
    from kefu.db.engine import make_engine
    from kefu.shop.demo import seed
    from kefu.shop.repository import SqlShopRepository

    engine = make_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    seed(engine, orders=50)
    service = OrderService(SqlShopRepository(engine))
    conversation = "c-cancel"
    order = service.repository.find_order(CASES["paid_unshipped"]["order_no"])
    outcome = service.cancel(conversation, order)
    assert outcome.decision and outcome.order.status == "refunding" and outcome.ticket.kind == "refund"
    again = service.cancel(conversation, order)  # stale view: the database says refunding now
    assert not again.decision
    address = service.change_address(
        conversation,
        service.repository.find_order(CASES["pending_payment"]["order_no"]),
        "广东省深圳市南山区科技园路9号",
    )
    assert address.decision and address.order.ship_address.startswith("广东省深圳市")
    shipped = service.repository.find_order(CASES["shipped"]["order_no"])
    assert (
        service.change_address(conversation, shipped, "广东省深圳市南山区科技园路9号").decision.rule
        == "address_after_shipping"
    )


def test_request_key_identifies_one_request():
    assert request_key("c1", "return", "1", 5) == request_key("c1", "return", "1", 5)
    assert request_key("c1", "return", "1", 5) != request_key("c1", "exchange", "1", 5)
    assert request_key("c1", "return", "1", 5) != request_key("c2", "return", "1", 5)
