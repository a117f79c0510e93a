"""Engine, sessions and schema version: the one place that opens connections.

`DATABASE_URL` selects the database; without it the embedded SQLite file at
``var/shop.sqlite3`` (relative to the project root, or ``KEFU_HOME``) is used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from kefu.db.models import Base, SchemaVersion
from kefu.shop.errors import ShopUnavailable

logger = logging.getLogger(__name__)

# Bump when the models change, and add a step to MIGRATIONS below.
SCHEMA_VERSION = 7

PROJECT_ROOT = Path(__file__).resolve().parents[2]


# The longest a query may hold a customer's turn: the answer (or the
# apology) must reach the customer within 10 s.
STATEMENT_TIMEOUT_SECONDS = 5
POOL_TIMEOUT_SECONDS = 3


class DatabaseError(ShopUnavailable):
    """The shop database cannot be used; the message is one line for the operator."""


class DatabaseConfigError(DatabaseError):
    """DATABASE_URL is malformed or names a driver that is not installed."""


class DatabaseUnavailable(DatabaseError):
    """The database did not answer (down, wrong host, wrong credentials)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def default_sqlite_path() -> Path:
    home = Path(os.environ.get("KEFU_HOME", PROJECT_ROOT))
    return home / "var" / "shop.sqlite3"


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        # Heroku-style URLs say postgres://, which SQLAlchemy 1.4 refuses.
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        return url
    return f"sqlite:///{default_sqlite_path()}"


def describe_url(url: str) -> str:
    """The URL with its password hidden, for log lines and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is described as such
        return "<malformed URL>"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the action server read while a seeding or ticket write runs;
    # foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    """Create an engine for `url` (default: DATABASE_URL or the SQLite file).

    Raises DatabaseConfigError for a URL that cannot be used at all.
    """
    url = url or database_url()
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseConfigError(f"DATABASE_URL is not a valid database URL ({describe_url(url)}): {exc}") from None
    kwargs: dict = {"future": True, "echo": echo}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # SQLAlchemy 1.4 opens a new file connection per session (NullPool):
            # with the pragmas, connect and close were most of the action
            # server's time per call (BENCHMARKS.md). Pooled, as in SQLAlchemy 2.0.
            kwargs.update(poolclass=QueuePool, pool_size=5, max_overflow=10, pool_timeout=POOL_TIMEOUT_SECONDS)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": STATEMENT_TIMEOUT_SECONDS}
    else:
        kwargs.update(
            pool_pre_ping=True, pool_size=5, max_overflow=10, pool_recycle=1800, pool_timeout=POOL_TIMEOUT_SECONDS
        )
        if parsed.get_backend_name() == "postgresql":
            kwargs["connect_args"] = {
                "connect_timeout": STATEMENT_TIMEOUT_SECONDS,
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_SECONDS * 1000}",
            }
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError, ArgumentError) as exc:
        raise DatabaseConfigError(
            f"DATABASE_URL names a database this installation cannot use ({describe_url(url)}): {exc}"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@cache
def _cached_engine(url: str) -> Engine:
    return make_engine(url)


def get_engine() -> Engine:
    """The process-wide engine for the configured database (pooled, thread-safe)."""
    return _cached_engine(database_url())


def session_factory(engine: Engine | None = None) -> sessionmaker:
    return sessionmaker(bind=engine or get_engine(), future=True, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A short-lived session: commit on success, roll back on error.

    Callers open one per operation; sessions are never shared between
    concurrent actions. Every storage failure (connection, pool time-out,
    statement time-out, a value the database refuses) surfaces as
    DatabaseUnavailable, a ShopUnavailable; other errors pass unchanged.
    """
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except SQLAlchemyError as exc:
        _rollback_quietly(session)
        raise DatabaseUnavailable(f"{type(exc).__name__}: {_one_line(exc)}") from exc
    except Exception:
        _rollback_quietly(session)
        raise
    finally:
        session.close()


def _rollback_quietly(session: Session) -> None:
    # With the server gone the rollback fails too; the original error is the one to report.
    try:
        session.rollback()
    except SQLAlchemyError as exc:
        logger.debug("rollback failed after a database error: %s", _one_line(exc))


def insert_unless_exists(session: Session, table: Any, values: dict, key: str | list[str] | None) -> bool:
    """Insert a row unless one with the same unique `key` (a column, or the
    columns of a unique constraint; None: any unique index of the table,
    partial ones included) exists; True when inserted. The conflict is
    skipped inside the statement (PostgreSQL and SQLite), so the surrounding
    transaction is not aborted by it."""
    dialect = session.get_bind().dialect.name
    columns = [key] if isinstance(key, str) else key  # None: no conflict target
    if dialect == "postgresql":
        statement = postgresql.insert(table).values(**values).on_conflict_do_nothing(index_elements=columns)
    elif dialect == "sqlite":
        statement = sqlite.insert(table).values(**values).on_conflict_do_nothing(index_elements=columns)
    else:
        statement = insert(table).values(**values)
    return session.execute(statement).rowcount == 1


# The escape character of every LIKE pattern made with escape_like().
LIKE_ESCAPE = "\\"


def escape_like(text: str) -> str:
    """`text` matched literally inside a LIKE pattern (use `escape=LIKE_ESCAPE`):
    a product called "100%纯棉" or "A_B" must not match every name."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def check_connection(engine: Engine | None = None) -> None:
    """Raise DatabaseError with a one-line message naming DATABASE_URL if unusable."""
    engine = engine or get_engine()
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(
            f"cannot reach the shop database at DATABASE_URL={describe_url(str(engine.url))}: {_one_line(exc)}"
        ) from None


# --- schema version -------------------------------------------------------
#
# A documented equivalent of Alembic, sized for a schema this small: the
# database stores its version in kefu_schema_version; ensure_schema() creates
# a new database at SCHEMA_VERSION and runs the steps in MIGRATIONS, in order,
# to bring an older one up to date. A database newer than this code is refused
# rather than guessed at.


def _add_columns(conn, table: str, columns: dict[str, str]) -> None:
    """ALTER TABLE ... ADD COLUMN for each column the table lacks (new tables
    come from create_all, which runs before the steps)."""
    from sqlalchemy import inspect

    present = {c["name"] for c in inspect(conn).get_columns(table)}
    for name, ddl in columns.items():
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}")


def _migrate_to_2(conn) -> None:
    """The agent console: hand-off claims, the agent on ratings and audit rows."""
    _add_columns(
        conn,
        "handoff_requests",
        {
            "claimed_by": "INTEGER REFERENCES staff_accounts(id)",
            "claimed_at": "TIMESTAMP",
            "closed_at": "TIMESTAMP",
            "reminded_at": "TIMESTAMP",
            "left_message": "BOOLEAN NOT NULL DEFAULT FALSE",
        },
    )
    _add_columns(conn, "satisfaction_ratings", {"staff_id": "INTEGER REFERENCES staff_accounts(id)"})
    _add_columns(conn, "audit_log", {"staff_id": "INTEGER"})


def _index_audit_log_by_order_action_time(conn) -> None:
    conn.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS ix_audit_log_order_action_time ON audit_log (order_id, action, happened_at)"
    )


def _notices_tables(conn) -> None:
    """Notices (consent, outbox, campaigns, send log, WeChat contacts,
    cursors): new tables only, which create_all made before this step; the
    step exists so the version says they are there."""
    from sqlalchemy import inspect

    missing = {"notice_consents", "notices", "notice_campaigns"} - set(inspect(conn).get_table_names())
    if missing:
        raise DatabaseError(f"schema step 4: tables {sorted(missing)} were not created")


def _add_faq_answers(conn) -> None:
    """FAQ answers editable in the console (kefu/faq.py). create_all has
    made the table already; checkfirst keeps the step safe to re-run."""
    from kefu.db.models import FaqAnswer

    FaqAnswer.__table__.create(conn, checkfirst=True)


def _one_open_ticket_per_item(conn) -> None:
    """One open ticket per order item and kind, kept by a unique index. Before
    it, two conversations filing the same request at once could each create
    one: the first filed stays open, the others are closed (no row is
    deleted), each with an audit row naming the ticket kept."""
    from kefu.db.models import ONE_OPEN_TICKET_PER_ITEM, OPEN_TICKET_STATUSES, AftersalesTicket, AuditLog

    tickets = conn.execute(
        select(
            AftersalesTicket.id,
            AftersalesTicket.ticket_no,
            AftersalesTicket.order_id,
            AftersalesTicket.kind,
            AftersalesTicket.product_id,
            AftersalesTicket.conversation_id,
        )
        .where(
            AftersalesTicket.status.in_(OPEN_TICKET_STATUSES),
            AftersalesTicket.kind != "complaint",
            AftersalesTicket.order_id.is_not(None),
        )
        .order_by(AftersalesTicket.created_at, AftersalesTicket.id)
    ).all()
    kept: dict[tuple, Any] = {}
    now = utcnow()
    for ticket in tickets:
        first = kept.setdefault((ticket.order_id, ticket.kind, ticket.product_id or 0), ticket)
        if first is ticket:
            continue
        logger.warning("ticket %s duplicates open ticket %s: closed", ticket.ticket_no, first.ticket_no)
        conn.execute(
            update(AftersalesTicket).where(AftersalesTicket.id == ticket.id).values(status="closed", updated_at=now)
        )
        conn.execute(
            insert(AuditLog).values(
                happened_at=now,
                conversation_id=ticket.conversation_id,
                action="close_duplicate_ticket",
                order_id=ticket.order_id,
                outcome=f"duplicate_of:{first.ticket_no}",
            )
        )
    ONE_OPEN_TICKET_PER_ITEM.create(conn, checkfirst=True)


def _wechat_window_slots(conn) -> None:
    """WeChat's 5 messages per 48-hour window as slots with a primary key
    (kefu/notices: the cap is taken atomically). create_all has made the
    table; the messages already sent in open windows take their slots, so
    a window half used before the upgrade is not counted from zero."""
    from kefu.db.models import NoticeAttempt, WeChatContact, WeChatWindowSlot

    WeChatWindowSlot.__table__.create(conn, checkfirst=True)
    sent = conn.execute(
        select(NoticeAttempt.address, WeChatContact.last_message_at, NoticeAttempt.notice_id, NoticeAttempt.happened_at)
        .join(WeChatContact, WeChatContact.openid == NoticeAttempt.address)
        .where(
            NoticeAttempt.channel == "wechat",
            NoticeAttempt.outcome == "sent",
            NoticeAttempt.happened_at > WeChatContact.last_message_at,
        )
        .order_by(NoticeAttempt.address, NoticeAttempt.happened_at, NoticeAttempt.id)
    ).all()
    taken: dict[str, int] = {}
    for openid, window_start, notice_id, happened_at in sent:
        slot = taken.get(openid, 0) + 1
        if slot > 5:  # sent beyond the cap before the slots existed (WeChat refused those)
            continue
        exists = conn.execute(
            select(WeChatWindowSlot.slot).where(
                WeChatWindowSlot.openid == openid,
                WeChatWindowSlot.window_start == window_start,
                WeChatWindowSlot.notice_id == notice_id,
            )
        ).first()
        if exists is None:  # a re-run of the step adds nothing
            conn.execute(
                insert(WeChatWindowSlot).values(
                    openid=openid, window_start=window_start, slot=slot, notice_id=notice_id, taken_at=happened_at
                )
            )
        taken[openid] = slot


MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    # version reached: step that brings the previous version to it
    2: _migrate_to_2,
    3: _index_audit_log_by_order_action_time,
    4: _notices_tables,
    5: _add_faq_answers,
    6: _one_open_ticket_per_item,
    7: _wechat_window_slots,
}


def current_schema_version(engine: Engine) -> int | None:
    from sqlalchemy import inspect

    if not inspect(engine).has_table(SchemaVersion.__tablename__):
        return None
    with engine.connect() as conn:
        return conn.execute(select(SchemaVersion.version)).scalar()


def ensure_schema(engine: Engine | None = None) -> int:
    """Create missing tables and migrate to SCHEMA_VERSION; return the version."""
    engine = engine or get_engine()
    check_connection(engine)
    version = current_schema_version(engine)
    if version is not None and version > SCHEMA_VERSION:
        raise DatabaseError(
            f"the shop database at {describe_url(str(engine.url))} has schema version "
            f"{version}, newer than this Kefu ({SCHEMA_VERSION}); upgrade Kefu"
        )
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        if version is None:
            conn.execute(SchemaVersion.__table__.insert().values(version=SCHEMA_VERSION, applied_at=utcnow()))
            logger.info("created shop schema version %s", SCHEMA_VERSION)
            return SCHEMA_VERSION
        for step in range(version + 1, SCHEMA_VERSION + 1):
            logger.info("migrating shop schema to version %s", step)
            MIGRATIONS[step](conn)
        if version != SCHEMA_VERSION:
            conn.execute(SchemaVersion.__table__.update().values(version=SCHEMA_VERSION, applied_at=utcnow()))
    return SCHEMA_VERSION
