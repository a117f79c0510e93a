"""What the WeChat channel must remember across workers and restarts: the
MsgIds it handled, the (timestamp, nonce) pairs it accepted, and the access
token of the customer-service API.

In Redis when configured (`redis_url` in credentials.yml), else in the shop
database, table `wechat_state`, created here when missing (it is not part of
the shop's schema: nothing else reads it, and losing it costs at most a
repeated answer or a new access token).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

logger = logging.getLogger(__name__)


class StateStore:
    """Keys with values and an expiry."""

    def claim(self, key: str, value: str, ttl: float) -> bool:
        """Sets `key` only if it is unset (or expired); True when this call set it."""
        raise NotImplementedError

    def put(self, key: str, value: str, ttl: float) -> None:
        raise NotImplementedError

    def get(self, key: str) -> str | None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError


class MemoryStateStore(StateStore):
    """One process only: for tests and a single-worker bot without a database."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[str, float]] = {}

    def _live(self, key: str) -> str | None:
        stored = self._values.get(key)
        if stored is None or stored[1] < time.time():
            self._values.pop(key, None)
            return None
        return stored[0]

    def claim(self, key, value, ttl):
        if self._live(key) is not None:
            return False
        self._values[key] = (value, time.time() + ttl)
        return True

    def put(self, key, value, ttl):
        self._values[key] = (value, time.time() + ttl)

    def get(self, key):
        return self._live(key)

    def delete(self, key):
        self._values.pop(key, None)


class RedisStateStore(StateStore):
    def __init__(self, url: str, prefix: str = "kefu:wechat:") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._prefix = prefix

    def claim(self, key, value, ttl):
        return bool(self._redis.set(self._prefix + key, value, nx=True, px=max(1, int(ttl * 1000))))

    def put(self, key, value, ttl):
        self._redis.set(self._prefix + key, value, px=max(1, int(ttl * 1000)))

    def get(self, key):
        return self._redis.get(self._prefix + key)

    def delete(self, key):
        self._redis.delete(self._prefix + key)


class DatabaseStateStore(StateStore):
    """Over the shop database (kefu.db.engine); the table is created if
    missing, and expired rows are deleted at most once a minute."""

    PURGE_EVERY_SECONDS = 60.0

    def __init__(self, engine: Any = None) -> None:
        from sqlalchemy import Column, Float, MetaData, String, Table, Text

        from kefu.db.engine import get_engine

        self._engine = engine if engine is not None else get_engine()
        metadata = MetaData()
        self._table = Table(
            "wechat_state",
            metadata,
            Column("key", String(200), primary_key=True),
            Column("value", Text, nullable=False),
            Column("expires_at", Float, nullable=False, index=True),
        )
        metadata.create_all(self._engine, checkfirst=True)
        self._purged_at = 0.0

    def claim(self, key, value, ttl):
        from sqlalchemy import delete

        from kefu.db.engine import insert_unless_exists, session_scope

        now = time.time()
        if now - self._purged_at > self.PURGE_EVERY_SECONDS:
            self._purged_at = now
            self.purge_expired()
        with session_scope(self._engine) as session:
            session.execute(delete(self._table).where(self._table.c.key == key, self._table.c.expires_at < now))
            return insert_unless_exists(session, self._table, dict(key=key, value=value, expires_at=now + ttl), "key")

    def put(self, key, value, ttl):
        from sqlalchemy import delete, insert

        from kefu.db.engine import session_scope

        with session_scope(self._engine) as session:
            session.execute(delete(self._table).where(self._table.c.key == key))
            session.execute(insert(self._table).values(key=key, value=value, expires_at=time.time() + ttl))

    def get(self, key):
        from sqlalchemy import select

        from kefu.db.engine import session_scope

        with session_scope(self._engine) as session:
            return session.execute(
                select(self._table.c.value).where(self._table.c.key == key, self._table.c.expires_at >= time.time())
            ).scalar_one_or_none()

    def delete(self, key):
        from sqlalchemy import delete

        from kefu.db.engine import session_scope

        with session_scope(self._engine) as session:
            session.execute(delete(self._table).where(self._table.c.key == key))

    def purge_expired(self) -> None:
        from sqlalchemy import delete

        from kefu.db.engine import session_scope

        with session_scope(self._engine) as session:
            session.execute(delete(self._table).where(self._table.c.expires_at < time.time()))


def state_store(redis_url: str | None = None) -> StateStore:
    if redis_url:
        return RedisStateStore(redis_url)
    return DatabaseStateStore()


class AccessTokenStorage:
    """wechatpy's SessionStorage over a StateStore, so every worker (and the
    next start) uses one access token instead of each fetching its own,
    which would invalidate the others'."""

    def __init__(self, store: StateStore, default_ttl: float = 7200) -> None:
        self._store = store
        self._default_ttl = default_ttl

    def get(self, key: str, default: Any = None) -> Any:
        value = self._store.get(f"session:{key}")
        return default if value is None else json.loads(value)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._store.put(f"session:{key}", json.dumps(value), ttl or self._default_ttl)

    def delete(self, key: str) -> None:
        self._store.delete(f"session:{key}")

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        self.delete(key)
