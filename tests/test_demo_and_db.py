"""The demo shop's content and determinism, the schema version, and the
one-line errors for a bad DATABASE_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from kefu.db.engine import (
    SCHEMA_VERSION,
    DatabaseError,
    check_connection,
    current_schema_version,
    ensure_schema,
    make_engine,
    utcnow,
)
from kefu.db.models import AftersalesTicket, Customer, Order, Product, ShipmentEvent
from kefu.shop.demo import SHOWCASE_ORDERS, seed, showcase
from kefu.shop.repository import SqlShopRepository


@pytest.fixture(scope="module")
def demo_engine(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('demo') / 'shop.sqlite3'}")
    seed(engine, orders=1000)
    return engine


def _count(engine, *what):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(what[0]).where(*what[1:])).scalar()


def test_demo_shop_has_what_the_spec_asks(demo_engine):
    assert _count(demo_engine, Product) >= 120
    with demo_engine.connect() as conn:
        categories = conn.execute(select(func.count(func.distinct(Product.category)))).scalar()
        statuses = {s for (s,) in conn.execute(select(Order.status).distinct())}
    assert categories >= 8
    assert _count(demo_engine, Customer) >= 200
    assert _count(demo_engine, Order) == 1000
    assert statuses == {
        "pending_payment",
        "paid",
        "shipped",
        "delivered",
        "completed",
        "cancelled",
        "refunding",
        "refunded",
    }
    assert _count(demo_engine, Product, Product.stock == 0) > 0
    assert _count(demo_engine, Product, Product.returnable.is_(False)) > 0
    assert _count(demo_engine, AftersalesTicket) > 0
    # Every shipped order has events; no unshipped order has any.
    with demo_engine.connect() as conn:
        shipped_without = conn.execute(
            select(func.count())
            .select_from(Order)
            .where(Order.shipped_at.is_not(None), ~Order.id.in_(select(ShipmentEvent.order_id)))
        ).scalar()
        unshipped_with = conn.execute(
            select(func.count())
            .select_from(Order)
            .where(Order.shipped_at.is_(None), Order.id.in_(select(ShipmentEvent.order_id)))
        ).scalar()
    assert shipped_without == 0 and unshipped_with == 0


def test_showcase_orders_are_live_cases(demo_engine):
    repository = SqlShopRepository(demo_engine)
    now = utcnow()
    for case in SHOWCASE_ORDERS:
        order = repository.find_order(case.order_no)
        assert order is not None and order.status == case.status, case.key
        if case.delivered_days_ago is not None:
            age = now - order.delivered_at
            assert abs(age - timedelta(days=case.delivered_days_ago)) < timedelta(minutes=5), case.key
    assert repository.verify_phone_tail(showcase()["li_delivered_5d"]["order_no"], "5678") is not None


def test_same_seed_same_rows(tmp_path):
    def snapshot(path):
        engine = make_engine(f"sqlite:///{path}")
        seed(engine, orders=300, seed=7)
        with engine.connect() as conn:
            return (
                conn.execute(
                    select(Order.order_no, Order.status, Order.total_cents, Order.customer_id).order_by(Order.id)
                ).all(),
                conn.execute(select(Customer.name, Customer.phone).order_by(Customer.id)).all(),
                conn.execute(select(Product.sku, Product.name, Product.price_cents).order_by(Product.id)).all(),
            )

    assert snapshot(tmp_path / "a.sqlite3") == snapshot(tmp_path / "b.sqlite3")


def test_schema_version_is_recorded_and_newer_databases_refused(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'v.sqlite3'}")
    assert ensure_schema(engine) == SCHEMA_VERSION == current_schema_version(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE kefu_schema_version SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(DatabaseError, match="newer"):
        ensure_schema(engine)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_version_5_database_gets_one_open_ticket_per_item(backend, request, tmp_path):
    """Step 6: a version 5 database may hold two open tickets for one order
    item and kind (two conversations filed it at once). The migration keeps
    the first open, closes the others with an audit row naming it, keeps
    every row, and from then on the database itself refuses a second one."""
    from sqlalchemy import update

    from kefu.db.models import AuditLog

    url = (
        f"sqlite:///{tmp_path / 'v3.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("empty_postgres_url")
    )
    engine = make_engine(url)
    seed(engine, orders=20)
    with engine.begin() as conn:
        # What version 5 had: no such index.
        conn.exec_driver_sql("DROP INDEX IF EXISTS uq_tickets_one_open_per_item")
        conn.exec_driver_sql("UPDATE kefu_schema_version SET version = 5")
    repository = SqlShopRepository(engine)
    order = repository.find_order(SHOWCASE_ORDERS[0].order_no)
    product_id = order.items[0].product_id
    # Three conversations filed the same return at once, as version 5 allowed.
    with engine.begin() as conn:
        for n in range(3):
            conn.execute(
                AftersalesTicket.__table__.insert().values(
                    ticket_no=f"ASV3{n:014d}",
                    order_id=order.id,
                    customer_id=order.customer_id,
                    kind="return",
                    reason="不喜欢",
                    status="open",
                    created_at=utcnow() + timedelta(seconds=n),
                    request_key=f"v3-{n}",
                    conversation_id=f"v3-conversation-{n}",
                    product_id=product_id,
                )
            )
    first, second, third = sorted(
        (t for t in repository.tickets_of_order(order.id) if t.ticket_no.startswith("ASV3")), key=lambda t: t.id
    )
    with engine.begin() as conn:
        conn.execute(update(AftersalesTicket).where(AftersalesTicket.id == third.id).values(status="rejected"))

    assert ensure_schema(engine) == SCHEMA_VERSION == current_schema_version(engine)
    status = {t.ticket_no: t.status for t in repository.tickets_of_order(order.id)}
    assert status == {first.ticket_no: "open", second.ticket_no: "closed", third.ticket_no: "rejected"}
    with engine.connect() as conn:
        audit = conn.execute(
            select(AuditLog.conversation_id, AuditLog.action, AuditLog.outcome).where(AuditLog.order_id == order.id)
        ).all()
    assert ("v3-conversation-1", "close_duplicate_ticket", f"duplicate_of:{first.ticket_no}") in audit
    again, created = repository.create_ticket(
        request_key="v4",
        kind="return",
        order_id=order.id,
        customer_id=order.customer_id,
        reason="不喜欢",
        conversation_id="v4-conversation",
        product_id=product_id,
    )
    assert not created and again.ticket_no == first.ticket_no
    assert ensure_schema(engine) == SCHEMA_VERSION  # the step is not run twice
    engine.dispose()


def test_unreachable_database_raises_a_one_line_error():
    with pytest.raises(DatabaseError) as error:
        check_connection(make_engine("postgresql://nobody@127.0.0.1:1/none"))
    assert "DATABASE_URL" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("url", ["not a url", "foo://x/y", "postgresql://nobody@127.0.0.1:1/none"])
def test_cli_names_the_variable_without_a_traceback(url):
    result = subprocess.run(
        [sys.executable, "-m", "kefu.cli", "db", "check"],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url},
        timeout=60,
    )
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
