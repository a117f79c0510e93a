"""Where the conversations file is, and how it is opened: shared by the
SQLite tracker store (kefu.sqlite_event_log) and `kefu db backup`, without
importing Rasa (a backup should not load TensorFlow)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUSY_TIMEOUT_MS = 5000

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    sender_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    session_start INTEGER NOT NULL DEFAULT 0,
    length INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS conversation_events (
    sender_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (sender_id, position)
) WITHOUT ROWID;
"""


def conversations_path(configured: str | os.PathLike | None = None) -> Path:
    """Where the conversations are: KEFU_CONVERSATIONS_DB, else the path
    configured in endpoints.yml, else var/conversations.sqlite3 of the
    project (relative paths are relative to KEFU_HOME, else the project
    root, as the shop's default database is)."""
    chosen = os.environ.get("KEFU_CONVERSATIONS_DB") or configured or "var/conversations.sqlite3"
    path = Path(chosen)
    return path if path.is_absolute() else Path(os.environ.get("KEFU_HOME", ROOT)) / path


def connect(path: Path, synchronous: str = "NORMAL") -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are begun explicitly below.
    connection = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode=WAL")
    if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
    connection.execute(f"PRAGMA synchronous={synchronous.upper()}")
    connection.executescript(SCHEMA)
    return connection
