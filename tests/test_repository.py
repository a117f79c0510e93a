"""The data-access interface against a seeded database: SQLite always,
PostgreSQL on the loopback server (skipped, with the reason, if absent)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest

from kefu.db.engine import make_engine, utcnow
from kefu.shop.demo import SHOWCASE_REFUND_TICKET_NO, showcase
from kefu.shop.repository import SqlShopRepository, StateConflict
from kefu.shop.service import OrderService

CASES = showcase()


def test_find_order_by_number(repository):
    order = repository.find_order(CASES["shipped"]["order_no"])
    assert order is not None and order.status == "shipped"
    assert order.items and order.items[0].product_name == "索尼WH-1000XM5"
    assert order.tracking_no and order.carrier


@pytest.mark.parametrize("order_no", ["0000000000000000", "", "1' OR '1'='1", "2026000000000001; DROP TABLE orders"])
def test_unknown_or_hostile_order_numbers_find_nothing(repository, order_no):
    assert repository.find_order(order_no) is None
    assert repository.find_order(CASES["delivered_2d"]["order_no"]) is not None  # table intact


def test_find_order_by_tracking_number(repository):
    shipped = repository.find_order(CASES["shipped"]["order_no"])
    assert repository.find_order_by_tracking_no(shipped.tracking_no).order_no == shipped.order_no


def test_orders_of_customer_newest_first(repository):
    wang = repository.find_order(CASES["delivered_2d"]["order_no"]).customer_id
    orders = repository.orders_of_customer(wang, limit=20)
    assert len(orders) >= 11
    assert all(o.customer_id == wang for o in orders)
    assert [o.created_at for o in orders] == sorted((o.created_at for o in orders), reverse=True)
    assert len(repository.orders_of_customer(wang, limit=3)) == 3


@pytest.mark.parametrize("tail, ok", [("8000", True), ("8001", False), ("80a0", False), ("800", False), ("", False)])
def test_verify_phone_tail(repository, tail, ok):
    order_no = CASES["delivered_2d"]["order_no"]
    owner = repository.find_order(order_no).customer_id
    assert repository.verify_phone_tail(order_no, tail) == (owner if ok else None)


def test_verify_phone_tail_of_unknown_order(repository):
    assert repository.verify_phone_tail("9999999999999999", "8000") is None


def test_shipment_events_newest_first(repository):
    order = repository.find_order(CASES["shipped"]["order_no"])
    events = repository.shipment_events(order.id)
    assert len(events) >= 2
    assert [e.happened_at for e in events] == sorted((e.happened_at for e in events), reverse=True)
    assert len(repository.shipment_events(order.id, limit=1)) == 1


def test_product_search_by_name_alias_brand_category_and_budget(repository):
    assert repository.get_product("小米14").price_cents == 399900
    assert repository.get_product("苹果15").name == "iPhone 15"  # an alias
    assert repository.get_product("不存在的商品") is None
    by_name = repository.search_products("AirPods")
    assert by_name and all("AirPods" in p.name for p in by_name)
    assert repository.search_products("爱疯15")[0].name == "iPhone 15"
    phones = repository.search_products(category="手机", max_price_cents=300000, limit=10)
    assert phones and all(p.category == "手机" and p.price_cents <= 300000 for p in phones)
    stock = [p.in_stock for p in phones]
    assert stock == sorted(stock, reverse=True), "in stock first"
    assert all(p.brand == "华为" for p in repository.search_products(brand="华为"))
    assert repository.search_products("100%") == []  # LIKE wildcards are literal


def test_catalogue_terms(repository):
    terms = repository.catalogue()
    assert len(terms.products) >= 120 and len(terms.categories) >= 8
    assert "苹果15" in terms.products["iPhone 15"]
    assert terms.product_category["小米14"] == "手机"


def test_create_ticket_is_idempotent(repository):
    order = _fresh_delivered_order(repository)
    key = f"test-{uuid.uuid4()}"
    first, created = repository.create_ticket(
        request_key=key, kind="return", order_id=order.id, customer_id=order.customer_id, reason="不喜欢"
    )
    again, created_again = repository.create_ticket(
        request_key=key, kind="return", order_id=order.id, customer_id=order.customer_id, reason="不喜欢"
    )
    assert created and not created_again and first.ticket_no == again.ticket_no
    assert sum(t.ticket_no == first.ticket_no for t in repository.tickets_of_order(order.id)) == 1


def test_racing_ticket_requests_create_one_ticket(repository):
    order = _fresh_delivered_order(repository)
    key = f"race-{uuid.uuid4()}"
    results = []

    def submit():
        results.append(
            repository.create_ticket(
                request_key=key, kind="return", order_id=order.id, customer_id=order.customer_id, reason="质量问题"
            )
        )

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({ticket.ticket_no for ticket, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def _fresh_delivered_order(repository, items: int = 1):
    """A delivered order of our own (the showcase customer's, delivered a
    day ago), so that the tickets other tests file do not count here."""
    from kefu.db.engine import session_scope
    from kefu.db.models import Order, OrderItem

    source = repository.find_order(CASES["delivered_2d"]["order_no"])
    order_no = f"8{uuid.uuid4().int % 10**15:015d}"
    with session_scope(repository.engine) as session:
        order = Order(
            order_no=order_no,
            customer_id=source.customer_id,
            status="delivered",
            total_cents=100,
            created_at=utcnow() - timedelta(days=3),
            delivered_at=utcnow() - timedelta(days=1),
            ship_name="测试",
            ship_phone="13800138000",
            ship_address="北京市朝阳区建国路1号",
        )
        session.add(order)
        session.flush()
        product_ids = [row.product_id for row in source.items] + [1, 2, 3]
        for product_id in product_ids[:items]:
            session.add(OrderItem(order_id=order.id, product_id=product_id, quantity=1, unit_price_cents=100))
    return repository.find_order(order_no)


def test_conversations_racing_for_one_order_item_create_one_ticket(repository, shop_url):
    """Customers in several conversations (on several action servers: one
    engine each) return the same order item at the same moment: the database
    keeps one open ticket, and every other conversation is told that one."""
    order = _fresh_delivered_order(repository)
    item = order.items[0]
    racers = 6
    barrier = threading.Barrier(racers)
    outcomes, errors = [], []

    def submit(index: int) -> None:
        engine = make_engine(shop_url)
        try:
            service = OrderService(SqlShopRepository(engine))
            barrier.wait(timeout=30)
            outcomes.append(
                service.submit_aftersales(f"race-{index}-{uuid.uuid4()}", "return", order, item, "质量问题")
            )
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(outcomes) == racers
    assert all(outcome.decision for outcome in outcomes)
    assert sum(outcome.ticket_created for outcome in outcomes) == 1
    assert len({outcome.ticket.ticket_no for outcome in outcomes}) == 1
    assert [t.kind for t in repository.tickets_of_order(order.id)] == ["return"]


def test_one_open_ticket_per_order_item_and_kind(repository):
    """Across conversations: the same item and kind while a ticket is open is
    that ticket; another item, another kind, a complaint, or the same request
    once the ticket is closed, each get their own."""
    from sqlalchemy import update

    from kefu.db.engine import session_scope
    from kefu.db.models import AftersalesTicket

    order = _fresh_delivered_order(repository, items=2)
    first, second = order.items

    def ticket(conversation, kind, product_id):
        return repository.create_ticket(
            request_key=f"{conversation}|{kind}|{product_id}",
            kind=kind,
            order_id=order.id,
            customer_id=order.customer_id,
            reason="质量问题",
            conversation_id=conversation,
            product_id=product_id,
        )

    opened, created = ticket("a", "return", first.product_id)
    assert created
    again, created = ticket("b", "return", first.product_id)
    assert not created and again.ticket_no == opened.ticket_no
    assert ticket("b", "return", second.product_id)[1]
    assert ticket("b", "exchange", first.product_id)[1]
    refund, created = ticket("a", "refund", None)
    assert created and ticket("b", "refund", None) == (refund, False)
    assert ticket("a", "complaint", None)[1] and ticket("b", "complaint", None)[1]
    with session_scope(repository.engine) as session:
        session.execute(
            update(AftersalesTicket).where(AftersalesTicket.ticket_no == opened.ticket_no).values(status="closed")
        )
    reopened, created = ticket("c", "return", first.product_id)
    assert created and reopened.ticket_no != opened.ticket_no


def test_find_ticket_and_customer_tickets(repository):
    ticket = repository.find_ticket(SHOWCASE_REFUND_TICKET_NO)
    assert ticket is not None and ticket.kind == "refund"
    assert any(t.ticket_no == ticket.ticket_no for t in repository.tickets_of_customer(ticket.customer_id, 50))


def test_conditional_transitions(repository):
    # A fresh pending order of our own, so other tests keep the showcase.
    from kefu.db.engine import session_scope
    from kefu.db.models import Order

    source = repository.find_order(CASES["pending_payment"]["order_no"])
    with session_scope(repository.engine) as session:
        order = Order(
            order_no=f"9{uuid.uuid4().int % 10**15:015d}",
            customer_id=source.customer_id,
            status="pending_payment",
            total_cents=100,
            created_at=utcnow(),
            ship_name="测试",
            ship_phone="13800138000",
            ship_address="北京市朝阳区建国路1号",
        )
        session.add(order)
        session.flush()
        order_id = order.id
    changed = repository.change_address(order_id, ("pending_payment", "paid"), "上海市浦东新区世纪大道100号")
    assert changed.ship_address.startswith("上海市")
    assert repository.cancel_order(order_id, ("pending_payment", "paid"), "cancelled").status == "cancelled"
    with pytest.raises(StateConflict):
        repository.cancel_order(order_id, ("pending_payment", "paid"), "cancelled")
    with pytest.raises(StateConflict):
        repository.change_address(order_id, ("pending_payment", "paid"), "广州市天河区1号")


def test_ratings(repository):
    conversation = f"c-{uuid.uuid4()}"
    assert repository.record_rating(conversation, 5, "很满意") > 0
    for bad in (0, 6, -1):
        with pytest.raises(ValueError):
            repository.record_rating(conversation, bad)


def test_one_waiting_handoff_per_conversation(repository):
    conversation = f"c-{uuid.uuid4()}"
    first, created = repository.request_handoff(conversation, "customer_request")
    again, created_again = repository.request_handoff(conversation, "complaint")
    assert created and not created_again and first == again
    assert repository.waiting_handoffs_before(first) >= 0


def test_audit_rows(repository):
    from sqlalchemy import func, select

    from kefu.db.engine import session_scope
    from kefu.db.models import AuditLog

    conversation = f"c-{uuid.uuid4()}"
    repository.audit(conversation, "find_order", None, "not_found")
    with session_scope(repository.engine) as session:
        count = session.execute(select(func.count()).where(AuditLog.conversation_id == conversation)).scalar()
    assert count == 1


def test_active_promotions(repository):
    now = utcnow()
    active = repository.active_promotions(now)
    assert active and all(p.starts_at <= now < p.ends_at for p in active)
    titles = {p.title for p in active}
    assert "双十一大促" not in titles and "年货节预告券" not in titles
    assert repository.active_promotions(now + timedelta(days=50))  # the year-end coupon by then


@pytest.mark.parametrize(
    ("name", "text", "matches"),
    [("A_B", "A_B", True), ("A_B", "AxB", False), ("100%纯棉", "100%纯棉", True), ("100%纯棉", "100条纯棉", False)],
)
def test_like_patterns_match_names_literally(shop_url, name, text, matches):
    """LIKE patterns made of names (product search, a campaign's conversions)."""
    from sqlalchemy import literal, select

    from kefu.db.engine import LIKE_ESCAPE, escape_like

    pattern = f"%|{escape_like(name)}|%"
    with make_engine(shop_url).connect() as connection:
        found = connection.execute(select(literal(f"|x|{text}|y|").like(pattern, escape=LIKE_ESCAPE))).scalar()
    assert bool(found) is matches
