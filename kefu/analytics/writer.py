"""Turn conversation events (as Rasa's event brokers publish them) into the
analytics rows of kefu.analytics.store.

Idempotent: a user message is keyed by a hash of its event's JSON, a
hand-off by (conversation, reason), a conversation by (sender, session
start), and a response time is only filled while empty, so an event
delivered twice changes nothing the second time. The caller commits the rows
and its read position in one transaction (acknowledge after commit).
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection

from kefu.analytics import store

FALLBACK_INTENT = "nlu_fallback"
HANDOFF_SLOT = "handoff_reason"
NORMALIZED_LENGTH = 200
_PUNCTUATION_OR_SPACE = re.compile(r"[\s\W_]+", re.UNICODE)


def event_key(event: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(event, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def normalize_text(text: str) -> str:
    """What makes two not-understood messages "the same": full-width folded
    (NFKC), lower case, punctuation and spaces dropped."""
    folded = unicodedata.normalize("NFKC", text or "").lower()
    # A message of punctuation only ("？？？") keeps its punctuation.
    return (_PUNCTUATION_OR_SPACE.sub("", folded) or "".join(folded.split()))[:NORMALIZED_LENGTH]


def channel_of(event: dict[str, Any]) -> str:
    sender = str(event.get("sender_id") or "")
    input_channel = str(event.get("input_channel") or "")
    return "wechat" if sender.startswith("wechat-") or "wechat" in input_channel.lower() else "web"


def moment(event: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(float(event.get("timestamp") or 0), tz=timezone.utc).replace(tzinfo=None)


class AnalyticsWriter:
    """Writes the rows of a batch of events on one connection (inside the
    caller's transaction)."""

    def __init__(self, connection: Connection) -> None:
        self.db = connection

    def write(self, events: Iterable[dict[str, Any]]) -> int:
        """Apply the events; the number of user messages that were new."""
        new_turns = 0
        for event in events:
            if not isinstance(event, dict) or not event.get("sender_id"):
                continue
            kind = event.get("event")
            if kind == "session_started":
                self._conversation(event, start=True)
            elif kind == "user":
                new_turns += self._user(event)
            elif kind == "bot":
                self._bot(event)
            elif kind == "slot" and event.get("name") == HANDOFF_SLOT and event.get("value"):
                self._handoff(event)
        return new_turns

    # -- conversations -------------------------------------------------
    def _conversation(self, event: dict[str, Any], *, start: bool) -> dict | None:
        """The conversation the event belongs to: the sender's latest one
        started at or before it; a session start (or a user message with
        none before it) opens one."""
        sender, at = str(event["sender_id"]), moment(event)
        table = store.conversations
        if start:
            existing = self.db.execute(select(table).where(
                and_(table.c.sender_id == sender, table.c.started_at == at))).mappings().first()
            if existing is None:
                self.db.execute(insert(table).values(
                    sender_id=sender, started_at=at, last_event_at=at, channel=channel_of(event),
                    customer_key=sender, user_turns=0, fallback_turns=0, fallback_streak=0,
                    two_fallbacks_in_row=False, handed_off=False))
            return None
        row = self.db.execute(
            select(table).where(and_(table.c.sender_id == sender, table.c.started_at <= at))
            .order_by(table.c.started_at.desc()).limit(1)).mappings().first()
        return dict(row) if row is not None else None

    def _user(self, event: dict[str, Any]) -> int:
        at = moment(event)
        conversation = self._conversation(event, start=False)
        if conversation is None:
            self._conversation(event, start=True)
            conversation = self._conversation(event, start=False)
        assert conversation is not None
        parse = event.get("parse_data") or {}
        intent = (parse.get("intent") or {}).get("name") or FALLBACK_INTENT
        confidence = float((parse.get("intent") or {}).get("confidence") or 0.0)
        entities = parse.get("entities") or []
        products = sorted({str(e.get("value")) for e in entities if e.get("entity") == "product" and e.get("value")})
        categories = sorted({str(e.get("value")) for e in entities if e.get("entity") == "category" and e.get("value")})
        text = str(event.get("text") or "")
        key = event_key(event)
        if self.db.execute(select(store.user_turns.c.id).where(store.user_turns.c.event_key == key)).first():
            return 0
        is_fallback = intent == FALLBACK_INTENT
        self.db.execute(insert(store.user_turns).values(
            event_key=key, conversation_id=conversation["id"], sender_id=str(event["sender_id"]), at=at,
            channel=channel_of(event), text=text[:2000], normalized_text=normalize_text(text), intent=intent[:64],
            confidence=confidence, is_fallback=is_fallback, products="|".join(products)[:256],
            categories="|".join(categories)[:256], response_seconds=None))
        streak = conversation["fallback_streak"] + 1 if is_fallback else 0
        changes: dict[str, Any] = {
            "user_turns": conversation["user_turns"] + 1,
            "fallback_turns": conversation["fallback_turns"] + int(is_fallback),
            "fallback_streak": streak,
            "two_fallbacks_in_row": conversation["two_fallbacks_in_row"] or streak >= 2,
            "last_event_at": max(conversation["last_event_at"], at),
        }
        if conversation["user_turns"] == 0:
            changes["channel"] = channel_of(event)
        self.db.execute(update(store.conversations).where(store.conversations.c.id == conversation["id"])
                        .values(**changes))
        return 1

    def _bot(self, event: dict[str, Any]) -> None:
        at = moment(event)
        turns = store.user_turns
        latest = self.db.execute(
            select(turns.c.id, turns.c.at, turns.c.response_seconds)
            .where(and_(turns.c.sender_id == str(event["sender_id"]), turns.c.at <= at))
            .order_by(turns.c.at.desc()).limit(1)).first()
        # Only the first reply after a message counts, and only once.
        if latest is not None and latest.response_seconds is None:
            self.db.execute(update(turns).where(turns.c.id == latest.id)
                            .values(response_seconds=(at - latest.at).total_seconds()))

    def _handoff(self, event: dict[str, Any]) -> None:
        conversation = self._conversation(event, start=False)
        if conversation is None:
            return
        reason = str(event.get("value"))[:64]
        table = store.handoffs
        exists = self.db.execute(select(table.c.id).where(and_(
            table.c.conversation_id == conversation["id"], table.c.reason == reason))).first()
        if exists is None:
            self.db.execute(insert(table).values(conversation_id=conversation["id"],
                                                 sender_id=str(event["sender_id"]), at=moment(event), reason=reason))
        self.db.execute(update(store.conversations).where(store.conversations.c.id == conversation["id"])
                        .values(handed_off=True))
