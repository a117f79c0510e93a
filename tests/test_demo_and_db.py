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
