"""Data access of the agent console, over kefu.db (one short session per call).

Everything the console keeps lives in the shop database, so a console
restart, or several Rasa workers, lose nothing: accounts and sessions, who
holds which hand-off, what agents said, notes, tags and canned replies.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from kefu.console.auth import hash_password, new_token, token_hash, verify_password
from kefu.db.engine import get_engine, insert_unless_exists, session_scope, utcnow
from kefu.db.models import (
    STAFF_ROLES,
    AuditLog,
    CannedReply,
    ConversationMessage,
    CustomerNote,
    CustomerTag,
    HandoffRequest,
    SatisfactionRating,
    StaffAccount,
    StaffSession,
)
from kefu.shop.errors import ShopUnavailable

logger = logging.getLogger(__name__)

SESSION_HOURS = 12
MAX_FAILED_LOGINS = 5
LOCKOUT_MINUTES = 15
# An agent whose console has not been seen for this long is not "available".
AVAILABLE_WINDOW_SECONDS = 90
# A rating this long after a hand-back still counts for the agent who served.
RATING_WINDOW_MINUTES = 60

# Shortcuts are what agents type after `/` (Chinese through the IME, or pinyin
# initials an admin adds) and the chips' labels.
DEFAULT_CANNED_REPLIES = (
    ("问候", "您好，我是人工客服，很高兴为您服务，请问有什么可以帮您？"),
    ("稍等", "好的，我帮您查一下，请稍等片刻～"),
    ("致歉", "非常抱歉给您带来不便，我们会尽快为您处理。"),
    ("结束", "感谢您的耐心，还有其他问题随时联系我们，祝您生活愉快！"),
)


class StaffError(ValueError):
    """A staff account cannot be created as asked (the message says why)."""


@dataclass(frozen=True)
class Staff:
    id: int
    name: str
    role: str


@dataclass(frozen=True)
class SignedIn:
    staff: Staff
    csrf_token: str


@dataclass(frozen=True)
class LoginResult:
    staff: Staff | None
    locked_until: datetime | None = None


@dataclass(frozen=True)
class ClaimResult:
    ok: bool
    holder: str | None = None  # who holds it, when the claim was refused
    conversation_id: str | None = None
    status: str | None = None


@dataclass
class HandoffRow:
    id: int
    conversation_id: str
    reason: str
    status: str
    created_at: datetime
    claimed_by: int | None
    claimed_by_name: str | None
    claimed_at: datetime | None
    left_message: bool
    tags: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, h: HandoffRequest, claimed_by_name: str | None = None) -> HandoffRow:
        return cls(
            h.id,
            h.conversation_id,
            h.reason,
            h.status,
            h.created_at,
            h.claimed_by,
            claimed_by_name,
            h.claimed_at,
            bool(h.left_message),
        )


@dataclass(frozen=True)
class Staffing:
    """Whether the console is used at all (any staff account) and whether an agent is there now."""

    in_use: bool
    available: bool


def within_service_hours(now: datetime | None = None) -> bool:
    """KEFU_SERVICE_HOURS="9-22" (China time, the default): agents answer then."""
    from kefu.shop.formatting import CHINA_TZ

    try:
        start, end = (int(part) for part in os.environ.get("KEFU_SERVICE_HOURS", "9-22").split("-", 1))
    except ValueError:
        start, end = 9, 22
    hour = (now or datetime.now(CHINA_TZ)).hour
    return start <= hour < end


def handoff_update_seconds() -> int:
    """How long a hand-off may wait unclaimed before the one polite update."""
    try:
        return max(10, int(os.environ.get("KEFU_HANDOFF_UPDATE_SECONDS", "180")))
    except ValueError:
        return 180


class ConsoleStore:
    def __init__(self, engine: Engine | None = None):
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    def _session(self):
        return session_scope(self.engine)

    # --- accounts -----------------------------------------------------------
    def add_staff(self, name: str, role: str, password: str) -> Staff:
        name = name.strip()
        if not name or len(name) > 64:
            raise StaffError("the name must be 1-64 characters")
        if role not in STAFF_ROLES:
            raise StaffError(f"the role must be one of {', '.join(STAFF_ROLES)}")
        if len(password) < 8:
            raise StaffError("the password must have at least 8 characters")
        with self._session() as s:
            existing = s.execute(select(StaffAccount).where(StaffAccount.name == name)).scalar()
            if existing is not None:
                # Re-adding an account sets its role and password (how a
                # forgotten password is reset, and how `make run` renews the demo one).
                existing.role, existing.password_hash = role, hash_password(password)
                existing.failed_logins, existing.locked_until, existing.disabled = 0, None, False
                s.flush()
                return Staff(existing.id, existing.name, existing.role)
            account = StaffAccount(
                name=name,
                role=role,
                password_hash=hash_password(password),
                failed_logins=0,
                created_at=utcnow(),
                disabled=False,
            )
            s.add(account)
            s.flush()
            return Staff(account.id, account.name, account.role)

    def check_login(self, name: str, password: str) -> LoginResult:
        """The account if the password is right; failures count towards a lock-out."""
        now = utcnow()
        with self._session() as s:
            account = s.execute(select(StaffAccount).where(StaffAccount.name == name.strip())).scalar()
            if account is None or account.disabled:
                verify_password(password, _DUMMY_HASH)  # same time as a wrong password
                return LoginResult(None)
            if account.locked_until and account.locked_until > now:
                return LoginResult(None, account.locked_until)
            if not verify_password(password, account.password_hash):
                account.failed_logins = (account.failed_logins or 0) + 1
                if account.failed_logins >= MAX_FAILED_LOGINS:
                    account.locked_until = now + timedelta(minutes=LOCKOUT_MINUTES)
                    account.failed_logins = 0
                    return LoginResult(None, account.locked_until)
                return LoginResult(None)
            account.failed_logins, account.locked_until, account.last_seen_at = 0, None, now
            return LoginResult(Staff(account.id, account.name, account.role))

    def open_session(self, staff_id: int) -> tuple[str, str]:
        """(cookie token, CSRF token) for a new signed-in browser."""
        token, csrf = new_token(), new_token()
        now = utcnow()
        with self._session() as s:
            s.add(
                StaffSession(
                    token_hash=token_hash(token),
                    staff_id=staff_id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + timedelta(hours=SESSION_HOURS),
                )
            )
        return token, csrf

    def signed_in(self, token: str | None) -> SignedIn | None:
        if not token:
            return None
        with self._session() as s:
            row = s.execute(
                select(StaffSession, StaffAccount)
                .join(StaffAccount, StaffAccount.id == StaffSession.staff_id)
                .where(StaffSession.token_hash == token_hash(token))
            ).first()
            if row is None:
                return None
            session, account = row
            if session.expires_at < utcnow() or account.disabled:
                return None
            return SignedIn(Staff(account.id, account.name, account.role), session.csrf_token)

    def close_session(self, token: str) -> None:
        with self._session() as s:
            s.execute(StaffSession.__table__.delete().where(StaffSession.token_hash == token_hash(token)))

    def touch(self, staff_id: int) -> None:
        with self._session() as s:
            s.execute(update(StaffAccount).where(StaffAccount.id == staff_id).values(last_seen_at=utcnow()))

    def mark_away(self, staff_id: int) -> None:
        with self._session() as s:
            s.execute(update(StaffAccount).where(StaffAccount.id == staff_id).values(last_seen_at=None))

    def staffing(self) -> Staffing:
        """One query for the hand-off action: are there staff accounts, and is
        an agent's console open (seen within AVAILABLE_WINDOW_SECONDS)? A shop
        without staff accounts keeps the queue message of before the console."""
        since = utcnow() - timedelta(seconds=AVAILABLE_WINDOW_SECONDS)
        try:
            with self._session() as s:
                accounts, available = s.execute(
                    select(
                        func.count(StaffAccount.id),
                        func.count(StaffAccount.id).filter(
                            StaffAccount.last_seen_at >= since, StaffAccount.disabled.is_(False)
                        ),
                    )
                ).one()
        except ShopUnavailable as exc:  # e.g. a shop's own database without the console's tables
            logger.warning("agent console tables unavailable, hand-offs queue without it: %s", exc)
            return Staffing(False, False)
        return Staffing(accounts > 0, available > 0)

    # --- hand-offs ----------------------------------------------------------
    def open_handoffs(self) -> list[HandoffRow]:
        """Waiting ones oldest first, then those being served."""
        return self._handoffs(
            HandoffRequest.status.in_(("waiting", "taken")),
            HandoffRequest.status.desc(),
            HandoffRequest.created_at,
            HandoffRequest.id,
        )

    def handoff(self, handoff_id: int) -> HandoffRow | None:
        """One hand-off, whatever its status."""
        return next(iter(self._handoffs(HandoffRequest.id == handoff_id)), None)

    def _handoffs(self, where: Any, *order_by: Any) -> list[HandoffRow]:
        """Hand-offs with the name of the agent holding each and their conversations' tags."""
        with self._session() as s:
            rows = s.execute(
                select(HandoffRequest, StaffAccount.name)
                .outerjoin(StaffAccount, StaffAccount.id == HandoffRequest.claimed_by)
                .where(where)
                .order_by(*order_by)
            ).all()
            handoffs = [HandoffRow.of(h, name) for h, name in rows]
            if handoffs:
                tags = s.execute(
                    select(CustomerTag.conversation_id, CustomerTag.tag)
                    .where(CustomerTag.conversation_id.in_({h.conversation_id for h in handoffs}))
                    .order_by(CustomerTag.id)
                ).all()
                by_conversation: dict[str, list[str]] = {}
                for conversation_id, tag in tags:
                    by_conversation.setdefault(conversation_id, []).append(tag)
                for h in handoffs:
                    h.tags = by_conversation.get(h.conversation_id, [])
            return handoffs

    def claim(self, handoff_id: int, staff_id: int) -> ClaimResult:
        """Exactly one agent wins: the update only matches a waiting row."""
        with self._session() as s:
            won = s.execute(
                update(HandoffRequest)
                .where(HandoffRequest.id == handoff_id, HandoffRequest.status == "waiting")
                .values(status="taken", claimed_by=staff_id, claimed_at=utcnow())
            ).rowcount
            row = s.execute(
                select(HandoffRequest, StaffAccount.name)
                .outerjoin(StaffAccount, StaffAccount.id == HandoffRequest.claimed_by)
                .where(HandoffRequest.id == handoff_id)
            ).first()
            if row is None:
                return ClaimResult(False)
            handoff, holder = row
            if won:
                return ClaimResult(True, holder, handoff.conversation_id, handoff.status)
            return ClaimResult(False, holder, handoff.conversation_id, handoff.status)

    def release(self, handoff_id: int, staff_id: int) -> None:
        """Undo a claim (the conversation could not be paused)."""
        with self._session() as s:
            s.execute(
                update(HandoffRequest)
                .where(
                    HandoffRequest.id == handoff_id,
                    HandoffRequest.claimed_by == staff_id,
                    HandoffRequest.status == "taken",
                )
                .values(status="waiting", claimed_by=None, claimed_at=None)
            )

    def hand_back(self, handoff_id: int, staff_id: int) -> str | None:
        """Close a hand-off the agent holds; its conversation id, or None if not theirs."""
        with self._session() as s:
            handoff = s.get(HandoffRequest, handoff_id)
            if handoff is None or handoff.status != "taken" or handoff.claimed_by != staff_id:
                return None
            handoff.status, handoff.closed_at = "closed", utcnow()
            return handoff.conversation_id

    def holder_of(self, conversation_id: str) -> tuple[int, int] | None:
        """(hand-off id, staff id) of the agent serving this conversation now."""
        with self._session() as s:
            row = s.execute(
                select(HandoffRequest.id, HandoffRequest.claimed_by)
                .where(HandoffRequest.conversation_id == conversation_id, HandoffRequest.status == "taken")
                .order_by(HandoffRequest.id.desc())
            ).first()
            return (row[0], row[1]) if row else None

    def mark_left_message(self, conversation_id: str) -> None:
        with self._session() as s:
            s.execute(
                update(HandoffRequest)
                .where(HandoffRequest.conversation_id == conversation_id, HandoffRequest.status == "waiting")
                .values(left_message=True)
            )

    def due_for_update(self) -> list[HandoffRow]:
        """Waiting too long, not told yet, and not a 留言 (they were told already)."""
        return self._waiting_unreminded(timedelta(seconds=handoff_update_seconds()), left_message=False)

    def stale_left_messages(self) -> list[HandoffRow]:
        """留言 nobody took within KEFU_LEFT_MESSAGE_HOURS: the bot answers again
        (the task stays open); reminded_at marks that this was done."""
        try:
            hours = max(1, int(os.environ.get("KEFU_LEFT_MESSAGE_HOURS", "12")))
        except ValueError:
            hours = 12
        return self._waiting_unreminded(timedelta(hours=hours), left_message=True)

    def _waiting_unreminded(self, waited: timedelta, *, left_message: bool) -> list[HandoffRow]:
        """Hand-offs (or 留言 tasks) waiting for longer than `waited` and not yet followed up."""
        with self._session() as s:
            rows = s.execute(
                select(HandoffRequest).where(
                    HandoffRequest.status == "waiting",
                    HandoffRequest.created_at <= utcnow() - waited,
                    HandoffRequest.reminded_at.is_(None),
                    HandoffRequest.left_message.is_(left_message),
                )
            ).scalars()
            return [HandoffRow.of(h) for h in rows]

    def mark_updated(self, handoff_id: int) -> bool:
        """True only for the first caller: the update is sent once."""
        with self._session() as s:
            return (
                s.execute(
                    update(HandoffRequest)
                    .where(HandoffRequest.id == handoff_id, HandoffRequest.reminded_at.is_(None))
                    .values(reminded_at=utcnow())
                ).rowcount
                == 1
            )

    def history(self, conversation_id: str, limit: int = 10) -> list[dict]:
        """Past hand-offs of a conversation, newest first."""
        with self._session() as s:
            rows = s.execute(
                select(HandoffRequest, StaffAccount.name)
                .outerjoin(StaffAccount, StaffAccount.id == HandoffRequest.claimed_by)
                .where(HandoffRequest.conversation_id == conversation_id)
                .order_by(HandoffRequest.id.desc())
                .limit(limit)
            ).all()
            return [
                {"id": h.id, "reason": h.reason, "status": h.status, "created_at": h.created_at, "agent": name}
                for h, name in rows
            ]

    # --- messages -----------------------------------------------------------
    def add_message(
        self,
        conversation_id: str,
        sender: str,
        text: str,
        *,
        staff_id: int | None = None,
        handoff_id: int | None = None,
    ) -> int:
        with self._session() as s:
            message = ConversationMessage(
                conversation_id=conversation_id,
                handoff_id=handoff_id,
                sender=sender,
                staff_id=staff_id,
                text=text[:2000],
                created_at=utcnow(),
            )
            s.add(message)
            s.flush()
            return message.id

    def keep_left_messages(self, handoff_id: int, conversation_id: str, texts: list[str]) -> int:
        """Store what the customer said after being invited to leave a message
        (留言), once: `texts` is everything said since; the new tail is added."""
        with self._session() as s:
            kept = s.execute(
                select(func.count(ConversationMessage.id)).where(
                    ConversationMessage.handoff_id == handoff_id, ConversationMessage.sender == "customer"
                )
            ).scalar_one()
            now = utcnow()
            for text in texts[kept:]:
                s.add(
                    ConversationMessage(
                        conversation_id=conversation_id,
                        handoff_id=handoff_id,
                        sender="customer",
                        text=text[:2000],
                        created_at=now,
                    )
                )
            return max(0, len(texts) - kept)

    def agent_messages_after(self, conversation_id: str, after_id: int) -> list[dict]:
        """What agents said in a conversation since message `after_id` (a page that was away catches up)."""
        with self._session() as s:
            rows = s.execute(
                select(ConversationMessage, StaffAccount.name)
                .outerjoin(StaffAccount, StaffAccount.id == ConversationMessage.staff_id)
                .where(
                    ConversationMessage.conversation_id == conversation_id,
                    ConversationMessage.sender == "agent",
                    ConversationMessage.id > after_id,
                )
                .order_by(ConversationMessage.id)
                .limit(50)
            ).all()
            return [{"id": m.id, "text": m.text, "agent": name} for m, name in rows]

    def messages(self, conversation_id: str, limit: int = 50) -> list[dict]:
        with self._session() as s:
            rows = (
                s.execute(
                    select(ConversationMessage)
                    .where(ConversationMessage.conversation_id == conversation_id)
                    .order_by(ConversationMessage.id.desc())
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            return [{"sender": m.sender, "text": m.text, "created_at": m.created_at} for m in reversed(rows)]

    # --- ratings ------------------------------------------------------------
    def attribute_rating(self, rating_id: int, conversation_id: str) -> int | None:
        """Name on a rating the agent who handed this conversation back just before."""
        since = utcnow() - timedelta(minutes=RATING_WINDOW_MINUTES)
        with self._session() as s:
            staff_id = s.execute(
                select(HandoffRequest.claimed_by)
                .where(
                    HandoffRequest.conversation_id == conversation_id,
                    HandoffRequest.status == "closed",
                    HandoffRequest.claimed_by.is_not(None),
                    HandoffRequest.closed_at >= since,
                )
                .order_by(HandoffRequest.closed_at.desc())
            ).scalar()
            if staff_id is not None:
                s.execute(
                    update(SatisfactionRating).where(SatisfactionRating.id == rating_id).values(staff_id=staff_id)
                )
            return staff_id

    def ratings(self, conversation_id: str, limit: int = 10) -> list[dict]:
        with self._session() as s:
            rows = s.execute(
                select(SatisfactionRating, StaffAccount.name)
                .outerjoin(StaffAccount, StaffAccount.id == SatisfactionRating.staff_id)
                .where(SatisfactionRating.conversation_id == conversation_id)
                .order_by(SatisfactionRating.id.desc())
                .limit(limit)
            ).all()
            return [{"score": r.score, "created_at": r.created_at, "agent": name} for r, name in rows]

    # --- notes and tags -----------------------------------------------------
    def add_note(self, conversation_id: str, customer_id: int | None, staff_id: int, text: str) -> None:
        with self._session() as s:
            s.add(
                CustomerNote(
                    conversation_id=conversation_id,
                    customer_id=customer_id,
                    staff_id=staff_id,
                    text=text[:1000],
                    created_at=utcnow(),
                )
            )

    def add_tag(self, conversation_id: str, customer_id: int | None, staff_id: int, tag: str) -> None:
        with self._session() as s:  # a tag given twice is kept once
            insert_unless_exists(
                s,
                CustomerTag,
                dict(
                    conversation_id=conversation_id,
                    customer_id=customer_id,
                    staff_id=staff_id,
                    tag=tag[:32],
                    created_at=utcnow(),
                ),
                ["conversation_id", "tag"],
            )

    def notes_and_tags(self, conversation_id: str, customer_id: int | None) -> dict:
        """A verified customer's notes and tags follow them across conversations."""
        with self._session() as s:
            note_where = CustomerNote.conversation_id == conversation_id
            tag_where = CustomerTag.conversation_id == conversation_id
            if customer_id is not None:
                note_where = note_where | (CustomerNote.customer_id == customer_id)
                tag_where = tag_where | (CustomerTag.customer_id == customer_id)
            notes = s.execute(
                select(CustomerNote, StaffAccount.name)
                .join(StaffAccount, StaffAccount.id == CustomerNote.staff_id)
                .where(note_where)
                .order_by(CustomerNote.id.desc())
                .limit(50)
            ).all()
            tags = s.execute(select(CustomerTag.tag).where(tag_where).order_by(CustomerTag.id)).scalars().all()
            return {
                "notes": [{"text": n.text, "agent": name, "created_at": n.created_at} for n, name in notes],
                "tags": list(dict.fromkeys(tags)),
            }

    # --- canned replies -----------------------------------------------------
    def canned_replies(self) -> list[dict]:
        with self._session() as s:
            rows = s.execute(select(CannedReply).order_by(CannedReply.shortcut)).scalars().all()
            if not rows:
                now = utcnow()
                rows = [CannedReply(shortcut=k, text=t, updated_at=now) for k, t in DEFAULT_CANNED_REPLIES]
                s.add_all(rows)
                s.flush()
            return [{"id": r.id, "shortcut": r.shortcut, "text": r.text} for r in rows]

    def save_canned_reply(self, shortcut: str, text: str) -> None:
        with self._session() as s:
            row = s.execute(select(CannedReply).where(CannedReply.shortcut == shortcut)).scalar()
            if row is None:
                s.add(CannedReply(shortcut=shortcut, text=text, updated_at=utcnow()))
            else:
                row.text, row.updated_at = text, utcnow()

    def delete_canned_reply(self, reply_id: int) -> None:
        with self._session() as s:
            s.execute(CannedReply.__table__.delete().where(CannedReply.id == reply_id))

    # --- audit --------------------------------------------------------------
    def audit(
        self, staff_id: int, conversation_id: str | None, action: str, order_id: int | None, outcome: str
    ) -> None:
        with self._session() as s:
            s.add(
                AuditLog(
                    happened_at=utcnow(),
                    conversation_id=conversation_id,
                    action=action[:64],
                    order_id=order_id,
                    outcome=outcome[:64],
                    staff_id=staff_id,
                )
            )


_DUMMY_HASH = hash_password("not a password of anybody")
