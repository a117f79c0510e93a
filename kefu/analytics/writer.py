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

from sqlalchemy import and_, bindparam, insert, select, update
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


def customer_of(event: dict[str, Any]) -> str | None:
    """'customer:<id>' when the message came from a logged-in customer: the
    signed customer token the page sends in the message's metadata, checked
    as of the message's own time (KEFU_TOKEN_SECRET; a forged or expired
    token names nobody). WeChat followers are known by their sender id
    (wechat-<openid>), bound to customers in the shop database."""
    from kefu.shop.tokens import METADATA_KEY, verify_customer_token

    token = (event.get("metadata") or {}).get(METADATA_KEY)
    if not token:
        return None
    customer_id = verify_customer_token(token, now=float(event.get("timestamp") or 0))
    return None if customer_id is None else f"customer:{customer_id}"


def moment(event: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(float(event.get("timestamp") or 0), tz=timezone.utc).replace(tzinfo=None)


class AnalyticsWriter:
    """Writes the rows of a batch of events on one connection (inside the
    caller's transaction). A batch is applied in memory first (the senders'
    current conversations, new user turns and their reply times) and
    written with a few statements per table: a month of events in seconds."""

    def __init__(self, connection: Connection) -> None:
        self.db = connection

    def write(self, events: Iterable[dict[str, Any]]) -> int:
        """Apply the events; the number of user messages that were new."""
        batch = [e for e in events if isinstance(e, dict) and e.get("sender_id")]
        self._conversations: dict[str, list[dict[str, Any]]] = {}  # sender -> its conversations, by start
        self._changed: dict[int, dict[str, Any]] = {}
        self._new_turns: dict[str, dict[str, Any]] = {}  # event_key -> row
        self._last_turn: dict[str, dict[str, Any]] = {}  # sender -> latest user turn seen
        self._handoffs: dict[tuple[int, str], dict[str, Any]] = {}
        self._load(batch)
        for event in batch:
            kind = event.get("event")
            if kind == "session_started":
                self._start(str(event["sender_id"]), moment(event), channel_of(event))
            elif kind == "user":
                self._user(event)
            elif kind == "bot":
                self._bot(event)
            elif kind == "slot" and event.get("name") == HANDOFF_SLOT and event.get("value"):
                self._handoff(event)
        self._flush()
        return len(self._new_turns)

    # -- loading what the batch needs ----------------------------------
    def _load(self, batch: list[dict[str, Any]]) -> None:
        senders = sorted({str(e["sender_id"]) for e in batch})
        keys = [event_key(e) for e in batch if e.get("event") == "user"]
        self._seen: set[str] = set()
        table = store.conversations
        for chunk in _chunks(senders):
            for row in self.db.execute(select(table).where(table.c.sender_id.in_(chunk))).mappings():
                self._conversations.setdefault(row["sender_id"], []).append(dict(row))
        for conversations in self._conversations.values():
            conversations.sort(key=lambda c: c["started_at"])
        for chunk in _chunks(keys):
            self._seen.update(
                self.db.execute(
                    select(store.user_turns.c.event_key).where(store.user_turns.c.event_key.in_(chunk))
                ).scalars()
            )

    # -- conversations -------------------------------------------------
    def _start(self, sender: str, at: datetime, channel: str) -> dict[str, Any]:
        conversations = self._conversations.setdefault(sender, [])
        for conversation in conversations:
            if conversation["started_at"] == at:
                return conversation
        local = store.china_time_columns(at)
        row = {
            "sender_id": sender,
            "started_at": at,
            "last_event_at": at,
            "channel": channel,
            "customer_key": sender,
            "user_turns": 0,
            "fallback_turns": 0,
            "fallback_streak": 0,
            "two_fallbacks_in_row": False,
            "handed_off": False,
            "local_day": local["local_day"],
            "local_week": local["local_week"],
        }
        row["id"] = self.db.execute(insert(store.conversations).values(**row)).inserted_primary_key[0]
        conversations.append(row)
        conversations.sort(key=lambda c: c["started_at"])
        return row

    def _current(self, sender: str, at: datetime) -> dict[str, Any] | None:
        """The sender's latest conversation started at or before `at`."""
        found = None
        for conversation in self._conversations.get(sender, []):
            if conversation["started_at"] <= at:
                found = conversation
        return found

    def _change(self, conversation: dict[str, Any], **values: Any) -> None:
        conversation.update(values)
        self._changed[conversation["id"]] = conversation

    def _user(self, event: dict[str, Any]) -> None:
        sender, at = str(event["sender_id"]), moment(event)
        key = event_key(event)
        if key in self._seen:
            return
        self._seen.add(key)
        conversation = self._current(sender, at) or self._start(sender, at, channel_of(event))
        parse = event.get("parse_data") or {}
        intent = (parse.get("intent") or {}).get("name") or FALLBACK_INTENT
        confidence = float((parse.get("intent") or {}).get("confidence") or 0.0)
        entities = parse.get("entities") or []
        products = sorted({str(e.get("value")) for e in entities if e.get("entity") == "product" and e.get("value")})
        categories = sorted({str(e.get("value")) for e in entities if e.get("entity") == "category" and e.get("value")})
        text = str(event.get("text") or "")
        is_fallback = intent == FALLBACK_INTENT
        turn = {
            "event_key": key,
            "conversation_id": conversation["id"],
            "sender_id": sender,
            "at": at,
            "channel": channel_of(event),
            "text": text[:2000],
            "normalized_text": normalize_text(text),
            "intent": intent[:64],
            "confidence": confidence,
            "is_fallback": is_fallback,
            "products": "|".join(products)[:256],
            "categories": "|".join(categories)[:256],
            "response_seconds": None,
            **store.china_time_columns(at),
        }
        self._new_turns[key] = turn
        self._last_turn[sender] = turn
        streak = conversation["fallback_streak"] + 1 if is_fallback else 0
        changes: dict[str, Any] = {
            "user_turns": conversation["user_turns"] + 1,
            "fallback_turns": conversation["fallback_turns"] + int(is_fallback),
            "fallback_streak": streak,
            "two_fallbacks_in_row": bool(conversation["two_fallbacks_in_row"]) or streak >= 2,
            "last_event_at": max(conversation["last_event_at"], at),
        }
        if conversation["user_turns"] == 0:
            changes["channel"] = channel_of(event)
        customer = customer_of(event)
        if customer is not None:
            changes["customer_key"] = customer
        self._change(conversation, **changes)

    def _bot(self, event: dict[str, Any]) -> None:
        sender, at = str(event["sender_id"]), moment(event)
        latest = self._last_turn.get(sender)
        if latest is None:
            turns = store.user_turns
            row = self.db.execute(
                select(turns.c.id, turns.c.at, turns.c.response_seconds)
                .where(and_(turns.c.sender_id == sender, turns.c.at <= at))
                .order_by(turns.c.at.desc())
                .limit(1)
            ).first()
            if row is None:
                return
            latest = {"id": row.id, "at": row.at, "response_seconds": row.response_seconds}
            self._last_turn[sender] = latest
        # Only the first reply after a message counts, and only once.
        if latest["at"] <= at and latest["response_seconds"] is None:
            latest["response_seconds"] = (at - latest["at"]).total_seconds()
            if "id" in latest:
                self.db.execute(
                    update(store.user_turns)
                    .where(store.user_turns.c.id == latest["id"])
                    .values(response_seconds=latest["response_seconds"])
                )

    def _handoff(self, event: dict[str, Any]) -> None:
        conversation = self._current(str(event["sender_id"]), moment(event))
        if conversation is None:
            return
        reason = str(event.get("value"))[:64]
        self._handoffs.setdefault(
            (conversation["id"], reason),
            {
                "conversation_id": conversation["id"],
                "sender_id": str(event["sender_id"]),
                "at": moment(event),
                "reason": reason,
            },
        )
        if not conversation["handed_off"]:
            self._change(conversation, handed_off=True)

    # -- writing -------------------------------------------------------
    def _flush(self) -> None:
        if self._new_turns:
            self.db.execute(insert(store.user_turns), list(self._new_turns.values()))
        if self._changed:
            table = store.conversations
            self.db.execute(
                update(table)
                .where(table.c.id == bindparam("conversation_id"))
                .values(
                    user_turns=bindparam("user_turns"),
                    fallback_turns=bindparam("fallback_turns"),
                    fallback_streak=bindparam("fallback_streak"),
                    two_fallbacks_in_row=bindparam("two_fallbacks_in_row"),
                    handed_off=bindparam("handed_off"),
                    last_event_at=bindparam("last_event_at"),
                    channel=bindparam("channel"),
                    customer_key=bindparam("customer_key"),
                ),
                [
                    {
                        **{
                            k: c[k]
                            for k in (
                                "user_turns",
                                "fallback_turns",
                                "fallback_streak",
                                "two_fallbacks_in_row",
                                "handed_off",
                                "last_event_at",
                                "channel",
                                "customer_key",
                            )
                        },
                        "conversation_id": c["id"],
                    }
                    for c in self._changed.values()
                ],
            )
        if self._handoffs:
            table = store.handoffs
            existing: set[tuple[int, str]] = set()
            for chunk in _chunks(sorted({cid for cid, _ in self._handoffs})):
                existing.update(
                    (row.conversation_id, row.reason)
                    for row in self.db.execute(
                        select(table.c.conversation_id, table.c.reason).where(table.c.conversation_id.in_(chunk))
                    )
                )
            fresh = [row for key, row in self._handoffs.items() if key not in existing]
            if fresh:
                self.db.execute(insert(table), fresh)


def _chunks(values: list, size: int = 500) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
