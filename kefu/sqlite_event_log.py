"""Conversations on disk by default: the event-log tracker store
(kefu.tracker_store) over a SQLite file, so that a restarted `make run`
continues every conversation where it was.

The same design as the Redis store: one row per event (its JSON text),
appended only; a conversation row with a version counter that changes on
every write and the position of the last `session_started`, so that a turn
reads the current session only. Events are masked before they get here
(EventLogTrackerStore.save).

Several processes may share the file (two `rasa run`, `kefu db backup`
while the bot runs): the file is in WAL mode (readers never wait for the
writer), a read is one transaction (a consistent snapshot of the two
tables), an append takes the write lock first (BEGIN IMMEDIATE) so that the
length it reads is the length it appends to, and a busy file is waited for
(busy_timeout) instead of failing. `synchronous=NORMAL`: a committed turn
survives a crash of the process; only a power cut may lose the last turns
(set `synchronous: FULL` in endpoints.yml for those too).

Configure (the default endpoints.yml)::

    tracker_store:
      type: kefu.sqlite_event_log.MaskingSQLiteTrackerStore
      # db: var/conversations.sqlite3   (KEFU_CONVERSATIONS_DB overrides)
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kefu.conversations_db import connect, conversations_path
from kefu.tracker_store import DEFAULT_LIVE_TRACKERS, EventLog, EventLogTrackerStore, StoredLog


class SQLiteEventLog(EventLog):
    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = path
        self._db = connect(path, synchronous)
        # One connection per store; Rasa calls the store from its event loop,
        # but a lock keeps a transaction whole if a thread ever does too.
        self._lock = threading.Lock()

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def version(self, sender_id: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT version FROM conversations WHERE sender_id = ?", (sender_id,)).fetchone()
        return row[0] if row else None

    def read(self, sender_id: str, current_session: bool) -> StoredLog | None:
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT version, session_start FROM conversations WHERE sender_id = ?", (sender_id,)
            ).fetchone()
            if row is None:
                return None
            version, session_start = row
            offset = session_start if current_session else 0
            texts = [
                text
                for (text,) in db.execute(
                    "SELECT event FROM conversation_events WHERE sender_id = ? AND position >= ? ORDER BY position",
                    (sender_id, offset),
                )
            ]
        return StoredLog(version, offset, texts)

    def append(self, sender_id: str, texts: list[str], session_start: int | None) -> tuple[int, int]:
        with self._transaction(write=True) as db:
            row = db.execute(
                "SELECT version, session_start, length FROM conversations WHERE sender_id = ?", (sender_id,)
            ).fetchone()
            version, old_start, length = row if row else (0, 0, 0)
            db.executemany(
                "INSERT INTO conversation_events (sender_id, position, event) VALUES (?, ?, ?)",
                [(sender_id, length + index, text) for index, text in enumerate(texts)],
            )
            db.execute(
                "INSERT OR REPLACE INTO conversations (sender_id, version, session_start, length) VALUES (?, ?, ?, ?)",
                (sender_id, version + 1, old_start if session_start is None else session_start, length + len(texts)),
            )
        return version + 1, length

    def replace(self, sender_id: str, texts: list[str], session_start: int) -> int:
        with self._transaction(write=True) as db:
            row = db.execute("SELECT version FROM conversations WHERE sender_id = ?", (sender_id,)).fetchone()
            version = (row[0] if row else 0) + 1
            db.execute("DELETE FROM conversation_events WHERE sender_id = ?", (sender_id,))
            db.executemany(
                "INSERT INTO conversation_events (sender_id, position, event) VALUES (?, ?, ?)",
                [(sender_id, index, text) for index, text in enumerate(texts)],
            )
            db.execute(
                "INSERT OR REPLACE INTO conversations (sender_id, version, session_start, length) VALUES (?, ?, ?, ?)",
                (sender_id, version, session_start, len(texts)),
            )
        return version

    def senders(self) -> list[str]:
        with self._lock:
            return [sender for (sender,) in self._db.execute("SELECT sender_id FROM conversations")]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class MaskingSQLiteTrackerStore(EventLogTrackerStore):
    """Conversations in a SQLite file (kept across restarts); the default."""

    def __init__(
        self,
        domain,
        db: str | None = None,
        synchronous: str = "NORMAL",
        event_broker=None,
        live_trackers: int = DEFAULT_LIVE_TRACKERS,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            domain,
            SQLiteEventLog(conversations_path(db), synchronous),
            event_broker,
            live_trackers=live_trackers,
            **kwargs,
        )
