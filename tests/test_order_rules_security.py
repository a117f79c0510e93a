"""Who may see what, guessing the phone tail, and one transaction per
operation: the service on the SQL repository (SQLite) and on the in-memory
one, which must behave alike."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from kefu.db.engine import DatabaseUnavailable, make_engine, session_scope, utcnow
from kefu.db.models import AftersalesTicket, AuditLog, Order
from kefu.shop.demo import demo_rows, seed, showcase
from kefu.shop.errors import ShopUnavailable
from kefu.shop.memory import InMemoryShopRepository
from kefu.shop.repository import SqlShopRepository
from kefu.shop.service import ORDER_LOCK_FAILURES, ORDER_LOCK_WINDOW, OrderService, Verification

CASES = showcase()


class ShiftedClock:
    """The service's clock, moved ahead of the database's by `shift`."""

    def __init__(self):
        self.shift = timedelta(0)

    def __call__(self):
        return utcnow() + self.shift


@pytest.fixture(params=["sql", "memory"])
def repository(request, tmp_path):
    if request.param == "memory":
        return InMemoryShopRepository.from_rows(demo_rows(orders=50))
    engine = make_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    seed(engine, orders=50)
    return SqlShopRepository(engine)


def audit_rows(repository, order_id):
    if isinstance(repository, InMemoryShopRepository):
        return [(r["action"], r["outcome"]) for r in repository.rows.audit_log if r["order_id"] == order_id]
    with session_scope(repository.engine) as s:
        return s.execute(
            select(AuditLog.action, AuditLog.outcome).where(AuditLog.order_id == order_id).order_by(AuditLog.id)
        ).all()


def test_wrong_tails_from_many_conversations_lock_the_order_until_the_window_passes(repository):
    clock = ShiftedClock()
    service = OrderService(repository, clock=clock)
    case = CASES["delivered_2d"]
    order = repository.find_order(case["order_no"])
    results = []
    for sender in range(40):  # 40 fresh sender ids, three guesses each
        for guess in ("0000", "1111", "2222"):
            results.append(service.verify_phone_tail(f"attacker-{sender}", order, guess))
    assert results[:ORDER_LOCK_FAILURES] == [Verification.WRONG_TAIL] * ORDER_LOCK_FAILURES
    assert set(results[ORDER_LOCK_FAILURES:]) == {Verification.LOCKED}
    # The owner, with the right tail, is refused too while it lasts ...
    assert service.verify_phone_tail("owner", order, case["phone_tail"]) is Verification.LOCKED
    rows = audit_rows(repository, order.id)
    assert ("lock_order_lookups", "locked") in rows and rows.count(("verify_phone_tail", "locked")) > 100
    # ... and is let in once the window has passed.
    clock.shift = ORDER_LOCK_WINDOW + timedelta(seconds=1)
    assert service.verify_phone_tail("owner", order, case["phone_tail"]) is Verification.VERIFIED


def test_a_few_wrong_tails_do_not_lock_the_order(repository):
    service = OrderService(repository)
    case = CASES["shipped"]
    order = repository.find_order(case["order_no"])
    for _ in range(ORDER_LOCK_FAILURES - 1):
        assert service.verify_phone_tail("typo", order, "9999") is Verification.WRONG_TAIL
    assert service.verify_phone_tail("typo", order, case["phone_tail"]) is Verification.VERIFIED


def test_a_verified_order_opens_that_order_only(repository):
    service = OrderService(repository)
    mine = repository.find_order(CASES["shipped"]["order_no"])
    other_of_same_customer = repository.find_order(CASES["delivered_2d"]["order_no"])
    conversation = f"c-{uuid.uuid4()}"
    assert service.find_order_by_tracking_no(conversation, mine.tracking_no) == mine
    assert service.accessible_order(conversation, mine.order_no, verified_order_no=mine.order_no) == mine
    assert (
        service.accessible_order(conversation, other_of_same_customer.order_no, verified_order_no=mine.order_no) is None
    )
    # A logged-in customer (a channel-proven id) sees their own orders, not others'.
    assert (
        service.accessible_order(conversation, other_of_same_customer.order_no, customer_id=mine.customer_id)
        == other_of_same_customer
    )
    stranger = next(c for c in repository_customers(repository) if c != mine.customer_id)
    assert service.accessible_order(conversation, mine.order_no, customer_id=stranger) is None
    assert ("find_order_by_tracking_no", "found") in audit_rows(repository, mine.id)


def repository_customers(repository):
    if isinstance(repository, InMemoryShopRepository):
        return list(repository.rows.customers)
    return list(range(1, 50))


def test_a_cancellation_whose_refund_ticket_fails_changes_nothing_and_a_retry_works(repository, monkeypatch):
    service = OrderService(repository)
    order = repository.find_order(CASES["paid_unshipped"]["order_no"])
    real_create_ticket = repository.create_ticket

    def broken(**kwargs):
        raise ShopUnavailable("ticket table unavailable")

    monkeypatch.setattr(repository, "create_ticket", broken)
    with pytest.raises(ShopUnavailable):
        service.cancel("c-broken", order)
    assert repository.find_order(order.order_no).status == "paid"
    assert not [row for row in audit_rows(repository, order.id) if row[0] == "cancel_order"]
    monkeypatch.setattr(repository, "create_ticket", real_create_ticket)
    outcome = service.cancel("c-broken", order)
    assert outcome.decision and outcome.order.status == "refunding" and outcome.ticket_created
    assert repository.find_order(order.order_no).status == "refunding"


def test_a_second_conversation_is_told_the_open_ticket_of_the_same_item(repository):
    """The same order item and kind from two conversations: one ticket, and
    the second conversation gets that ticket (the bot says it exists)."""
    service = OrderService(repository)
    order = repository.find_order(CASES["delivered_2d"]["order_no"])
    first = service.submit_aftersales("c-first", "return", order, order.items[0], "不喜欢")
    second = service.submit_aftersales("c-second", "return", order, order.items[0], "不喜欢")
    assert first.ticket_created and not second.ticket_created
    assert second.decision and second.ticket.ticket_no == first.ticket.ticket_no
    assert [t.kind for t in repository.tickets_of_order(order.id)].count("return") == 1
    assert ("request_return", "ticket_exists") in audit_rows(repository, order.id)


def test_every_storage_failure_is_shop_unavailable(tmp_path):
    # A server that does not answer, a refused value and a pool time-out all
    # reach the service's caller as the one documented error.
    down = SqlShopRepository(make_engine("postgresql://postgres@127.0.0.1:1/none"))
    with pytest.raises(ShopUnavailable):
        OrderService(down).find_order("c", "2026000000000001")
    engine = make_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    seed(engine, orders=20)
    repository = SqlShopRepository(engine)
    with pytest.raises(ShopUnavailable):
        with session_scope(engine) as s:  # a constraint violation, as a storage refusal
            s.execute(Order.__table__.update().values(status="no-such-status"))
    with pytest.raises(DatabaseUnavailable):
        with session_scope(engine) as s:
            s.execute(AftersalesTicket.__table__.insert().values(ticket_no=None))
    service = OrderService(repository)
    nul = service.complaint("c-nul", None, None, "坏了\x00\x00<script>")
    assert nul.ticket_created and "\x00" not in nul.ticket.reason


def test_memory_repository_is_switched_off_like_a_database_that_is_down():
    repository = InMemoryShopRepository.from_rows(demo_rows(orders=20))
    repository.available = False
    with pytest.raises(ShopUnavailable):
        OrderService(repository).find_order("c", CASES["shipped"]["order_no"])
