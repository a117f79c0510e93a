"""Shared fixtures: seeded shop databases (SQLite, and PostgreSQL when a
server answers), the trained model, and running servers."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from kefu.db.engine import make_engine
from kefu.shop.demo import seed
from kefu.shop.repository import SqlShopRepository

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get("KEFU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("shop") / "shop.sqlite3"
    url = f"sqlite:///{path}"
    seed(make_engine(url), orders=400)
    return url


def _postgres_database():
    """Create a throw-away database on the loopback server, or say why not."""
    try:
        admin = create_engine(
            POSTGRES_ADMIN_URL,
            isolation_level="AUTOCOMMIT",
            future=True,
            connect_args={"connect_timeout": 3},
            # The production tests restart the server mid-session: the
            # session-wide database is dropped through a pooled connection.
            pool_pre_ping=True,
        )
        with admin.connect() as conn:
            name = f"kefu_test_{uuid.uuid4().hex[:10]}"
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - any failure means: skip, with the reason
        return None, None, f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {str(exc).splitlines()[0]}"
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    return admin, (name, url), None


@pytest.fixture(scope="session")
def postgres_url():
    admin, created, why = _postgres_database()
    if created is None:
        print(f"\nSKIP postgres tests: {why}")
        pytest.skip(why)
    name, url = created
    engine = make_engine(url)
    seed(engine, orders=400)
    yield url
    engine.dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture()
def empty_postgres_url():
    """A new, empty database on the loopback server, dropped afterwards."""
    admin, created, why = _postgres_database()
    if created is None:
        pytest.skip(why)
    name, url = created
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shop_url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@pytest.fixture(scope="session")
def repository(shop_url) -> SqlShopRepository:
    return SqlShopRepository(make_engine(shop_url))


@pytest.fixture(scope="session")
def sqlite_repository(sqlite_url) -> SqlShopRepository:
    return SqlShopRepository(make_engine(sqlite_url))


@pytest.fixture(scope="session")
def trained_model():
    from kefu.testing import newest_model

    model = newest_model()
    if model is None:
        pytest.skip("no trained model: run `make test` (it trains once) or set KEFU_MODEL")
    return model


def pytest_configure(config):
    # Here rather than in pyproject.toml, whose hash decides a reinstall.
    config.addinivalue_line(
        "markers", "production: the production topology (scripts/prod.sh) under load and faults; skipped without nginx"
    )
