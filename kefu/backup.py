"""`kefu db backup PATH` / `kefu db restore PATH`: online, consistent copies
of the SQLite shop database and the conversations (kefu.sqlite_event_log).

SQLite's backup API copies a database page by page while the bot keeps
running (readers and writers of the WAL file carry on; the copy is one
consistent state). A restore copies the backup into the live files the same
way, so a running bot's next read sees the restored state (stop the bot
first all the same: its live trackers in memory are of the old state).

A PostgreSQL shop is not copied here: the README gives the pg_dump /
pg_restore lines; the conversations (SQLite by default) still are.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from kefu.conversations_db import ROOT, conversations_path
from kefu.db.engine import database_url, describe_url

SHOP_FILE = "shop.sqlite3"
CONVERSATIONS_FILE = "conversations.sqlite3"


def shop_sqlite_path(url: str | None = None) -> Path | None:
    """The shop's SQLite file, or None for another database server."""
    parsed = make_url(url or database_url())
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def copy_sqlite(source: Path, target: Path) -> None:
    """Copies one SQLite database onto another with the backup API."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Read-only source: a backup never changes what it copies.
    source_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    target_db = sqlite3.connect(str(target), timeout=30)
    try:
        source_db.backup(target_db, pages=1024)
        target_db.execute("PRAGMA journal_mode=WAL")
    finally:
        target_db.close()
        source_db.close()


def _pairs(directory: Path) -> list[tuple[str, Path | None, Path]]:
    """(what, live file or None when not SQLite, file in the backup)."""
    return [
        ("shop database", shop_sqlite_path(), directory / SHOP_FILE),
        ("conversations", conversations_path(_configured_conversations()), directory / CONVERSATIONS_FILE),
    ]


def _configured_conversations() -> str | None:
    """The `db` of a SQLite tracker store in endpoints.yml, if that is the store."""
    import yaml

    try:
        store = (yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8")) or {}).get("tracker_store") or {}
    except OSError:
        return None
    return store.get("db") if str(store.get("type", "")).endswith("MaskingSQLiteTrackerStore") else None


def backup(directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    done = []
    for what, live, copy in _pairs(directory):
        if live is None:
            done.append(f"{what}: not SQLite ({describe_url(database_url())}); use pg_dump (README)")
        elif not live.exists():
            done.append(f"{what}: {live} does not exist yet; nothing to copy")
        else:
            copy_sqlite(live, copy)
            done.append(f"{what}: {live} -> {copy}")
    return done


def restore(directory: Path) -> list[str]:
    if not directory.is_dir():
        raise FileNotFoundError(f"no backup directory at {directory}")
    done = []
    for what, live, copy in _pairs(directory):
        if not copy.exists():
            done.append(f"{what}: not in the backup ({copy.name} missing); left as it is")
        elif live is None:
            done.append(
                f"{what}: the shop database is not SQLite ({describe_url(database_url())}); "
                f"use pg_restore (README); {copy.name} left unused"
            )
        else:
            copy_sqlite(copy, live)
            done.append(f"{what}: {copy} -> {live}")
    return done
