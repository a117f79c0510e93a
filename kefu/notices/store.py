"""Data access of notices, over kefu.db (one short session per call): consent,
the outbox, the send log, WeChat contacts, trigger cursors and campaigns.

Nothing here knows of Rasa or of the job queue."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, and_, cast, delete, func, insert, literal, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from kefu.db.engine import LIKE_ESCAPE, escape_like, get_engine, insert_unless_exists, session_scope, utcnow
from kefu.db.models import (
    NOTICE_KINDS,
    Campaign,
    Customer,
    CustomerTag,
    Notice,
    NoticeAttempt,
    NoticeConsent,
    NoticeConsentChange,
    NoticeCursor,
    Order,
    OrderItem,
    Product,
    Promotion,
    WeChatContact,
    WeChatWindowSlot,
)

logger = logging.getLogger(__name__)

# Service notices are on unless refused; marketing is off until agreed to.
DEFAULT_CONSENT = {"service": True, "marketing": False}
CONSENT_CHANNELS = ("web", "wechat", "console", "api")


@dataclass(frozen=True)
class NoticeRow:
    id: int
    notice_key: str
    customer_id: int
    kind: str
    topic: str
    campaign_id: int | None
    order_id: int | None
    messages: list[dict]
    status: str
    attempts: int
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> NoticeRow:
        return cls(
            row.id,
            row.notice_key,
            row.customer_id,
            row.kind,
            row.topic,
            row.campaign_id,
            row.order_id,
            json.loads(row.body),
            row.status,
            row.attempts,
            row.created_at,
        )


@dataclass(frozen=True)
class Situation:
    openid: str | None
    consented: bool
    campaign_running: bool
    last_message_at: datetime | None
    sent_since: int


@dataclass(frozen=True)
class Audience:
    """Who a campaign goes to: always customers opted in to marketing, and of
    those the ones that match every rule given."""

    tag: str | None = None  # a tag agents put on the customer (customer panel)
    category: str | None = None  # bought in this category …
    days: int | None = None  # … within the last N days (30 when not said)
    unpaid: bool = False  # has an order waiting for payment

    @classmethod
    def from_dict(cls, data: dict) -> Audience:
        days = data.get("days")
        return cls(
            tag=(str(data.get("tag") or "").strip() or None),
            category=(str(data.get("category") or "").strip() or None),
            days=int(days) if days not in (None, "") else None,
            unpaid=bool(data.get("unpaid")),
        )

    def as_dict(self) -> dict:
        return {"tag": self.tag, "category": self.category, "days": self.days, "unpaid": self.unpaid}

    def customer_ids(self, now: datetime):
        """The SELECT of the audience's customer ids (one column, `id`)."""
        query = (
            select(Customer.id)
            .join(NoticeConsent, NoticeConsent.customer_id == Customer.id)
            .where(NoticeConsent.kind == "marketing", NoticeConsent.granted.is_(True))
        )
        if self.tag:
            query = query.where(Customer.id.in_(select(CustomerTag.customer_id).where(CustomerTag.tag == self.tag)))
        if self.category:
            since = now - timedelta(days=self.days or 30)
            query = query.where(
                Customer.id.in_(
                    select(Order.customer_id)
                    .join(OrderItem, OrderItem.order_id == Order.id)
                    .join(Product, Product.id == OrderItem.product_id)
                    .where(Product.category == self.category, Order.created_at >= since, Order.status != "cancelled")
                )
            )
        if self.unpaid:
            query = query.where(Customer.id.in_(select(Order.customer_id).where(Order.status == "pending_payment")))
        return query


def _plus_days(column: Any, days: int, dialect: str) -> Any:
    """`column` + `days` days in SQL (SQLite keeps datetimes as text)."""
    if dialect == "sqlite":
        return func.strftime("%Y-%m-%d %H:%M:%f", column, f"+{days} days")
    return column + timedelta(days=days)


def _has_analytics(session: Any) -> bool:
    """The analytics tables exist once the event broker or its consumer ran."""
    from sqlalchemy import inspect

    return bool(inspect(session.connection()).has_table("analytics_user_turns"))


class NoticeStore:
    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    # --- consent ------------------------------------------------------------

    def consent(self, customer_id: int, kind: str) -> bool:
        with session_scope(self.engine) as session:
            granted = session.execute(
                select(NoticeConsent.granted).where(
                    NoticeConsent.customer_id == customer_id, NoticeConsent.kind == kind
                )
            ).scalar_one_or_none()
        return DEFAULT_CONSENT[kind] if granted is None else bool(granted)

    def set_consent(
        self, customer_id: int, kind: str, granted: bool, channel: str, conversation_id: str | None = None
    ) -> bool:
        """Record the customer's choice; True when it changed anything. Every
        change is kept in notice_consent_history; withdrawing marketing
        consent also cancels the marketing notices not yet sent."""
        if kind not in NOTICE_KINDS or channel not in CONSENT_CHANNELS:
            raise ValueError(f"consent kind {kind!r} / channel {channel!r}")
        now = utcnow()
        with session_scope(self.engine) as session:
            current = session.get(NoticeConsent, (customer_id, kind))
            before = DEFAULT_CONSENT[kind] if current is None else current.granted
            if current is None:
                session.add(
                    NoticeConsent(customer_id=customer_id, kind=kind, granted=granted, channel=channel, changed_at=now)
                )
            elif current.granted != granted:
                current.granted, current.channel, current.changed_at = granted, channel, now
            if before == granted and current is not None:
                return False
            session.add(
                NoticeConsentChange(
                    customer_id=customer_id,
                    kind=kind,
                    granted=granted,
                    channel=channel,
                    conversation_id=conversation_id,
                    changed_at=now,
                )
            )
            if not granted:
                session.execute(
                    update(Notice)
                    .where(Notice.customer_id == customer_id, Notice.kind == kind, Notice.status == "pending")
                    .values(status="cancelled", reason="consent_withdrawn")
                )
            return before != granted

    def consent_history(self, customer_id: int) -> list[dict]:
        with session_scope(self.engine) as session:
            rows = session.execute(
                select(NoticeConsentChange)
                .where(NoticeConsentChange.customer_id == customer_id)
                .order_by(NoticeConsentChange.id)
            ).scalars()
            return [
                {"kind": r.kind, "granted": r.granted, "channel": r.channel, "changed_at": r.changed_at} for r in rows
            ]

    def customer_of_openid(self, openid: str) -> int | None:
        with session_scope(self.engine) as session:
            return session.execute(select(Customer.id).where(Customer.wechat_openid == openid)).scalar_one_or_none()

    def openid_of(self, customer_id: int) -> str | None:
        with session_scope(self.engine) as session:
            return session.execute(select(Customer.wechat_openid).where(Customer.id == customer_id)).scalar()

    # --- the outbox -----------------------------------------------------------

    def add(
        self,
        key: str,
        customer_id: int,
        kind: str,
        topic: str,
        messages: list[dict],
        *,
        order_id: int | None = None,
        campaign_id: int | None = None,
        not_before: datetime | None = None,
    ) -> int | None:
        """The new notice's id, or None when one with this key exists already."""
        now = utcnow()
        with session_scope(self.engine) as session:
            inserted = insert_unless_exists(
                session,
                Notice.__table__,
                dict(
                    notice_key=key,
                    customer_id=customer_id,
                    kind=kind,
                    topic=topic,
                    order_id=order_id,
                    campaign_id=campaign_id,
                    body=json.dumps(messages, ensure_ascii=False),
                    status="pending",
                    attempts=0,
                    created_at=now,
                    not_before=not_before or now,
                ),
                "notice_key",
            )
            if not inserted:
                return None
            return session.execute(select(Notice.id).where(Notice.notice_key == key)).scalar_one()

    def get(self, notice_id: int) -> dict | None:
        with session_scope(self.engine) as session:
            row = session.get(Notice, notice_id)
            if row is None:
                return None
            return {c.name: getattr(row, c.name) for c in Notice.__table__.columns}

    def due(self, limit: int = 1000, *, campaign_id: int | None = None) -> list[int]:
        """Notices a worker should try now: pending and due, or left 'sending'
        by a worker that died (its lease ran out)."""
        now = utcnow()
        query = select(Notice.id).where(
            or_(
                and_(Notice.status == "pending", Notice.not_before <= now),
                and_(Notice.status == "sending", Notice.lease_until < now),
            )
        )
        if campaign_id is not None:
            query = query.where(Notice.campaign_id == campaign_id)
        with session_scope(self.engine) as session:
            return list(session.execute(query.order_by(Notice.id).limit(limit)).scalars())

    def lost(self, grace_seconds: float, limit: int = 5000) -> list[int]:
        """Due notices whose job is not on the queue, or was lost: never queued,
        queued more than `grace_seconds` ago and still pending, or left
        'sending' by a worker that died (lease run out)."""
        now = utcnow()
        queued_long_ago = now - timedelta(seconds=grace_seconds)
        with session_scope(self.engine) as session:
            return list(
                session.execute(
                    select(Notice.id)
                    .where(
                        or_(
                            and_(
                                Notice.status == "pending",
                                Notice.not_before <= now,
                                or_(
                                    # never queued: posted to kefu.web, or its creator died before queuing it
                                    and_(Notice.queued_at.is_(None), Notice.created_at < now - timedelta(seconds=3)),
                                    Notice.queued_at < queued_long_ago,
                                ),
                            ),
                            and_(Notice.status == "sending", Notice.lease_until < now),
                        )
                    )
                    .order_by(Notice.id)
                    .limit(limit)
                ).scalars()
            )

    def mark_queued(self, notice_ids: list[int]) -> None:
        if not notice_ids:
            return
        with session_scope(self.engine) as session:
            session.execute(
                update(Notice)
                .where(Notice.id.in_(notice_ids))
                .values(queued_at=utcnow())
                .execution_options(synchronize_session=False)
            )

    def claim(self, notice_id: int, lease_seconds: float = 60) -> NoticeRow | None:
        """Take the notice for sending (one worker at a time); None when it is
        not due, already sent, or another worker holds it."""
        now = utcnow()
        with session_scope(self.engine) as session:
            taken = session.execute(
                update(Notice)
                .where(
                    Notice.id == notice_id,
                    or_(
                        and_(Notice.status == "pending", Notice.not_before <= now),
                        and_(Notice.status == "sending", Notice.lease_until < now),
                    ),
                )
                .values(
                    status="sending",
                    lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=Notice.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken != 1:
                return None
            return NoticeRow.of(session.get(Notice, notice_id))

    def claim_many(self, notice_ids: list[int], lease_seconds: float = 60) -> list[NoticeRow]:
        """claim() for a batch, in one transaction: the rows this call took."""
        if not notice_ids:
            return []
        now = utcnow()
        token = uuid.uuid4().hex
        with session_scope(self.engine) as session:
            session.execute(
                update(Notice)
                .where(
                    Notice.id.in_(notice_ids),
                    or_(
                        and_(Notice.status == "pending", Notice.not_before <= now),
                        and_(Notice.status == "sending", Notice.lease_until < now),
                    ),
                )
                .values(
                    status="sending",
                    lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=Notice.attempts + 1,
                    claim_token=token,
                )
                .execution_options(synchronize_session=False)
            )
            rows = session.execute(
                select(Notice).where(Notice.id.in_(notice_ids), Notice.claim_token == token).order_by(Notice.id)
            ).scalars()
            return [NoticeRow.of(row) for row in rows]

    def situations(self, notices: list[NoticeRow]) -> dict[int, Situation]:
        """situation() for a batch, in one session."""
        if not notices:
            return {}
        customers = {n.customer_id for n in notices}
        with session_scope(self.engine) as session:
            openids = dict(
                session.execute(select(Customer.id, Customer.wechat_openid).where(Customer.id.in_(customers))).all()
            )
            consents = {
                (c, k): bool(g)
                for c, k, g in session.execute(
                    select(NoticeConsent.customer_id, NoticeConsent.kind, NoticeConsent.granted).where(
                        NoticeConsent.customer_id.in_(customers)
                    )
                ).all()
            }
            campaigns = {n.campaign_id for n in notices if n.campaign_id is not None}
            statuses = (
                dict(session.execute(select(Campaign.id, Campaign.status).where(Campaign.id.in_(campaigns))).all())
                if campaigns
                else {}
            )
            followers = {o for o in openids.values() if o}
            last: dict[str, datetime] = {}
            sent: dict[str, int] = {}
            if followers:
                last = dict(
                    session.execute(
                        select(WeChatContact.openid, WeChatContact.last_message_at).where(
                            WeChatContact.openid.in_(followers)
                        )
                    ).all()
                )
                sent = dict(
                    session.execute(
                        select(NoticeAttempt.address, func.count(NoticeAttempt.id))
                        .join(WeChatContact, WeChatContact.openid == NoticeAttempt.address)
                        .where(
                            NoticeAttempt.address.in_(followers),
                            NoticeAttempt.channel == "wechat",
                            NoticeAttempt.outcome == "sent",
                            NoticeAttempt.happened_at > WeChatContact.last_message_at,
                        )
                        .group_by(NoticeAttempt.address)
                    ).all()
                )
        situations = {}
        for n in notices:
            openid = openids.get(n.customer_id)
            situations[n.id] = Situation(
                openid=openid,
                consented=consents.get((n.customer_id, n.kind), DEFAULT_CONSENT[n.kind]),
                campaign_running=n.campaign_id is None or statuses.get(n.campaign_id) in ("sending", "expanding"),
                last_message_at=last.get(openid) if openid else None,
                sent_since=int(sent.get(openid, 0)) if openid else 0,
            )
        return situations

    def finish_many(self, ends: list[dict]) -> None:
        """finish() for a batch, in one transaction. Each item: notice_id,
        status, channel, outcome, and optionally reason, address, detail, not_before."""
        if not ends:
            return
        now = utcnow()
        with session_scope(self.engine) as session:
            for end in ends:
                values: dict[str, Any] = dict(
                    status=end["status"], reason=end.get("reason"), channel=end["channel"], lease_until=None
                )
                if end["status"] in ("sent", "delivered"):
                    values["sent_at"] = now
                if end.get("not_before") is not None:
                    values["not_before"] = end["not_before"]
                session.execute(
                    update(Notice)
                    .where(Notice.id == end["notice_id"])
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
            session.execute(
                insert(NoticeAttempt),
                [
                    dict(
                        notice_id=end["notice_id"],
                        happened_at=now,
                        channel=end["channel"],
                        address=end.get("address"),
                        outcome=end["outcome"],
                        detail=(end.get("detail") or end.get("reason") or "")[:256],
                    )
                    for end in ends
                ],
            )

    def finish(
        self,
        notice_id: int,
        status: str,
        *,
        channel: str,
        outcome: str,
        reason: str | None = None,
        address: str | None = None,
        detail: str = "",
        not_before: datetime | None = None,
    ) -> None:
        """The end of one try: the notice's new status and the send-log row, together."""
        now = utcnow()
        values: dict[str, Any] = dict(status=status, reason=reason, channel=channel, lease_until=None)
        if status in ("sent", "delivered"):
            values["sent_at"] = now
        if status == "delivered":
            values["delivered_at"] = now
        if not_before is not None:
            values["not_before"] = not_before
        with session_scope(self.engine) as session:
            session.execute(update(Notice).where(Notice.id == notice_id).values(**values))
            session.add(
                NoticeAttempt(
                    notice_id=notice_id,
                    happened_at=now,
                    channel=channel,
                    address=address,
                    outcome=outcome,
                    detail=detail[:256],
                )
            )

    def attempts(self, notice_id: int) -> list[dict]:
        with session_scope(self.engine) as session:
            rows = session.execute(
                select(NoticeAttempt).where(NoticeAttempt.notice_id == notice_id).order_by(NoticeAttempt.id)
            ).scalars()
            return [
                {"channel": r.channel, "outcome": r.outcome, "detail": r.detail, "address": r.address} for r in rows
            ]

    # --- the web page -------------------------------------------------------

    def kept_for_web(self, customer_id: int, limit: int = 20) -> list[dict]:
        """Notices kept for a web customer who was not on the page."""
        return self._web_notices(
            and_(Notice.customer_id == customer_id, Notice.status == "sent", Notice.channel == "web"), limit
        )

    def web_sent_since(
        self, moment: datetime, limit: int = 500, after: tuple[datetime, int] | None = None
    ) -> list[dict]:
        """Web notices sent at or after `moment` and not yet shown (by sent_at:
        a notice postponed by quiet hours or retried is sent long after it
        was made, so ids are no cursor here)."""
        condition = and_(Notice.status == "sent", Notice.sent_at >= moment, Notice.channel == "web")
        if after is not None:  # the next page: past (sent_at, id) of the last row read
            condition = and_(
                condition, or_(Notice.sent_at > after[0], and_(Notice.sent_at == after[0], Notice.id > after[1]))
            )
        return self._web_notices(condition, limit, order=(Notice.sent_at, Notice.id))

    def _web_notices(self, condition: Any, limit: int, order: tuple = (Notice.id,)) -> list[dict]:
        """With the order's number, which the chat then knows (docs/notices.md)."""
        with session_scope(self.engine) as session:
            rows = session.execute(
                select(Notice.id, Notice.customer_id, Notice.body, Notice.sent_at, Order.order_no)
                .outerjoin(Order, Order.id == Notice.order_id)
                .where(condition)
                .order_by(*order)
                .limit(limit)
            ).all()
            return [
                {
                    "id": r.id,
                    "customer_id": r.customer_id,
                    "messages": json.loads(r.body),
                    "order_no": r.order_no,
                    "sent_at": r.sent_at,
                }
                for r in rows
            ]

    def mark_delivered(self, notice_ids: list[int]) -> None:
        if not notice_ids:
            return
        with session_scope(self.engine) as session:
            session.execute(
                update(Notice)
                .where(Notice.id.in_(notice_ids), Notice.status == "sent")
                .values(status="delivered", delivered_at=utcnow())
                .execution_options(synchronize_session=False)
            )

    def mark_clicked(self, notice_id: int, customer_id: int) -> bool:
        with session_scope(self.engine) as session:
            return (
                session.execute(
                    update(Notice)
                    .where(Notice.id == notice_id, Notice.customer_id == customer_id, Notice.clicked_at.is_(None))
                    .values(clicked_at=utcnow())
                    .execution_options(synchronize_session=False)
                ).rowcount
                == 1
            )

    def situation(self, notice: NoticeRow) -> Situation:
        """Everything the sending of `notice` depends on, read in one session
        (a campaign sends many: one round trip instead of five)."""
        with session_scope(self.engine) as session:
            openid = session.execute(select(Customer.wechat_openid).where(Customer.id == notice.customer_id)).scalar()
            granted = session.execute(
                select(NoticeConsent.granted).where(
                    NoticeConsent.customer_id == notice.customer_id, NoticeConsent.kind == notice.kind
                )
            ).scalar_one_or_none()
            running = True
            if notice.campaign_id is not None:
                status = session.execute(select(Campaign.status).where(Campaign.id == notice.campaign_id)).scalar()
                running = status in ("sending", "expanding")
            last, sent = None, 0
            if openid:
                last, sent = self._window(session, openid)
        return Situation(
            openid=openid,
            consented=DEFAULT_CONSENT[notice.kind] if granted is None else bool(granted),
            campaign_running=running,
            last_message_at=last,
            sent_since=sent,
        )

    @staticmethod
    def _window(session, openid: str) -> tuple[datetime | None, int]:
        last = session.execute(
            select(WeChatContact.last_message_at).where(WeChatContact.openid == openid)
        ).scalar_one_or_none()
        if last is None:
            return None, 0
        sent = session.execute(
            select(func.count(NoticeAttempt.id)).where(
                NoticeAttempt.address == openid,
                NoticeAttempt.channel == "wechat",
                NoticeAttempt.outcome == "sent",
                NoticeAttempt.happened_at > last,
            )
        ).scalar_one()
        return last, int(sent)

    # --- WeChat's window ------------------------------------------------------

    def wechat_wrote(self, openid: str, at: datetime | None = None) -> None:
        """The follower sent a message: the 48-hour window starts again."""
        at = at or utcnow()
        with session_scope(self.engine) as session:
            if not insert_unless_exists(
                session, WeChatContact.__table__, dict(openid=openid, last_message_at=at), "openid"
            ):
                session.execute(update(WeChatContact).where(WeChatContact.openid == openid).values(last_message_at=at))

    def take_wechat_slot(self, openid: str, notice_id: int, limit: int = 5) -> int | None:
        """Take one of the `limit` messages of the follower's current window
        for `notice_id`, before sending it: the slot number (1..limit), the
        one this notice took already in this window, or None when the window
        is full or the follower never wrote. Each slot is a primary key
        (openid, window start, slot), so two senders at the same instant
        cannot both take the 5th: on PostgreSQL the second INSERT waits for
        the first's commit and then conflicts; SQLite runs one writer at a
        time. Committed before the message is sent."""
        return self.take_wechat_slots([(openid, notice_id)], limit)[notice_id]

    def take_wechat_slots(self, wanted: list[tuple[str, int]], limit: int = 5) -> dict[int, int | None]:
        """take_wechat_slot() for a batch of (openid, notice id), in one
        transaction: notice id -> its slot, or None."""
        taken: dict[int, int | None] = {}
        if not wanted:
            return taken
        now = utcnow()
        with session_scope(self.engine) as session:
            starts = dict(
                session.execute(
                    select(WeChatContact.openid, WeChatContact.last_message_at).where(
                        WeChatContact.openid.in_({openid for openid, _ in wanted})
                    )
                ).all()
            )
            for openid, notice_id in wanted:
                start = starts.get(openid)
                taken[notice_id] = (
                    None if start is None else self._take_slot(session, openid, start, notice_id, limit, now)
                )
        return taken

    @staticmethod
    def _take_slot(session, openid: str, start: datetime, notice_id: int, limit: int, now: datetime) -> int | None:
        mine = session.execute(
            select(WeChatWindowSlot.slot).where(
                WeChatWindowSlot.openid == openid,
                WeChatWindowSlot.window_start == start,
                WeChatWindowSlot.notice_id == notice_id,
            )
        ).scalar_one_or_none()
        if mine is not None:
            return int(mine)
        for slot in range(1, limit + 1):
            values = dict(openid=openid, window_start=start, slot=slot, notice_id=notice_id, taken_at=now)
            if insert_unless_exists(session, WeChatWindowSlot.__table__, values, None):
                return slot
        return None

    def release_wechat_slot(self, openid: str, notice_id: int) -> None:
        """The message was not sent (WeChat refused it, or a temporary
        failure): its slot is free for another."""
        self.release_wechat_slots([(openid, notice_id)])

    def release_wechat_slots(self, pairs: list[tuple[str, int]]) -> None:
        if not pairs:
            return
        with session_scope(self.engine) as session:
            for openid, notice_id in pairs:
                session.execute(
                    delete(WeChatWindowSlot).where(
                        WeChatWindowSlot.openid == openid, WeChatWindowSlot.notice_id == notice_id
                    )
                )

    def wechat_window(self, openid: str) -> tuple[datetime | None, int]:
        """When the follower last wrote, and how many notices were sent to them since."""
        with session_scope(self.engine) as session:
            return self._window(session, openid)

    # --- trigger cursors ------------------------------------------------------

    def cursor(self, name: str) -> tuple[int, datetime | None] | None:
        with session_scope(self.engine) as session:
            row = session.get(NoticeCursor, name)
            return None if row is None else (row.value, row.moment)

    def set_cursor(self, name: str, value: int = 0, moment: datetime | None = None) -> None:
        with session_scope(self.engine) as session:
            row = session.get(NoticeCursor, name)
            if row is None:
                session.add(NoticeCursor(name=name, value=value, moment=moment))
            else:
                row.value, row.moment = value, moment

    # --- campaigns -------------------------------------------------------------

    def promotions(self, now: datetime | None = None) -> list[dict]:
        now = now or utcnow()
        with session_scope(self.engine) as session:
            rows = session.execute(
                select(Promotion).where(Promotion.ends_at >= now).order_by(Promotion.starts_at)
            ).scalars()
            return [
                {
                    "id": p.id,
                    "title": p.title,
                    "description": p.description,
                    "code": p.code,
                    "category": p.category,
                    "active": p.starts_at <= now,
                    "starts_at": p.starts_at,
                    "ends_at": p.ends_at,
                }
                for p in rows
            ]

    def categories(self) -> list[str]:
        with session_scope(self.engine) as session:
            return sorted(session.execute(select(Product.category).distinct()).scalars())

    def promotion(self, promotion_id: int) -> dict | None:
        return next((p for p in self.promotions(datetime.min) if p["id"] == promotion_id), None)

    def audience_count(self, audience: Audience) -> int:
        with session_scope(self.engine) as session:
            return int(
                session.execute(select(func.count()).select_from(audience.customer_ids(utcnow()).subquery())).scalar()
            )

    def audience_ids(self, audience: Audience) -> set[int]:
        with session_scope(self.engine) as session:
            return set(session.execute(audience.customer_ids(utcnow())).scalars())

    def create_campaign(
        self, promotion_id: int, audience: Audience, message: str, send_at: datetime, staff_id: int | None
    ) -> int:
        with session_scope(self.engine) as session:
            campaign = Campaign(
                promotion_id=promotion_id,
                audience=json.dumps(audience.as_dict(), ensure_ascii=False),
                message=message,
                status="scheduled",
                send_at=send_at,
                created_by=staff_id,
                created_at=utcnow(),
            )
            session.add(campaign)
            session.flush()
            return int(campaign.id)

    def due_campaigns(self) -> list[int]:
        with session_scope(self.engine) as session:
            return list(
                session.execute(
                    select(Campaign.id).where(Campaign.status == "scheduled", Campaign.send_at <= utcnow())
                ).scalars()
            )

    def expand_campaign(self, campaign_id: int, messages: list[dict], not_before: datetime) -> int | None:
        """Write one outbox row per customer of the audience, in one statement
        and one transaction with the campaign's move to 'sending': a worker
        killed here leaves all of them or none, and a second run adds nothing
        (the key is campaign:<id>:<customer>). The number written, or None
        when the campaign is not due, cancelled or expanded already."""
        now = utcnow()
        with session_scope(self.engine) as session:
            campaign = session.execute(
                select(Campaign).where(Campaign.id == campaign_id).with_for_update()
            ).scalar_one_or_none()
            if campaign is None or campaign.status != "scheduled" or campaign.send_at > now:
                return None
            audience = Audience.from_dict(json.loads(campaign.audience))
            ids = audience.customer_ids(now).subquery()
            prefix = f"campaign:{campaign_id}:"
            source = select(
                (literal(prefix, String) + cast(ids.c.id, String)).label("notice_key"),
                ids.c.id,
                literal("marketing", String),
                literal("campaign", String),
                literal(campaign_id, Integer),
                literal(json.dumps(messages, ensure_ascii=False), String),
                literal("pending", String),
                literal(0, Integer),
                literal(now),
                literal(not_before),
            ).where(true())  # SQLite needs a WHERE to read INSERT … SELECT … ON CONFLICT
            columns = [
                "notice_key",
                "customer_id",
                "kind",
                "topic",
                "campaign_id",
                "body",
                "status",
                "attempts",
                "created_at",
                "not_before",
            ]
            dialect = session.get_bind().dialect.name
            module = postgresql if dialect == "postgresql" else sqlite
            statement = (
                module.insert(Notice.__table__)
                .from_select(columns, source)
                .on_conflict_do_nothing(index_elements=["notice_key"])
            )
            written = session.execute(statement).rowcount
            campaign.status, campaign.expanded_at = "sending", now
            campaign.audience_count = session.execute(
                select(func.count(Notice.id)).where(Notice.campaign_id == campaign_id)
            ).scalar_one()
            return int(written)

    def campaign_finished(self, campaign_id: int) -> bool:
        """Mark a sending campaign done once none of its notices waits."""
        with session_scope(self.engine) as session:
            waiting = session.execute(
                select(func.count(Notice.id)).where(
                    Notice.campaign_id == campaign_id, Notice.status.in_(("pending", "sending"))
                )
            ).scalar_one()
            if waiting:
                return False
            return (
                session.execute(
                    update(Campaign)
                    .where(Campaign.id == campaign_id, Campaign.status == "sending")
                    .values(status="done")
                    .execution_options(synchronize_session=False)
                ).rowcount
                == 1
            )

    def cancel_campaign(self, campaign_id: int) -> bool:
        now = utcnow()
        with session_scope(self.engine) as session:
            changed = session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.status.in_(("scheduled", "expanding", "sending")))
                .values(status="cancelled", cancelled_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            session.execute(
                update(Notice)
                .where(Notice.campaign_id == campaign_id, Notice.status == "pending")
                .values(status="cancelled", reason="campaign_cancelled")
                .execution_options(synchronize_session=False)
            )
            return changed == 1

    def campaign_running(self, campaign_id: int) -> bool:
        with session_scope(self.engine) as session:
            return session.execute(select(Campaign.status).where(Campaign.id == campaign_id)).scalar() in (
                "sending",
                "expanding",
            )

    def campaigns(self, limit: int = 50) -> list[dict]:
        with session_scope(self.engine) as session:
            rows = session.execute(
                select(Campaign, Promotion.title)
                .join(Promotion, Promotion.id == Campaign.promotion_id)
                .order_by(Campaign.id.desc())
                .limit(limit)
            ).all()
            result = []
            for campaign, title in rows:
                result.append(
                    {
                        "id": campaign.id,
                        "promotion": title,
                        "audience": json.loads(campaign.audience),
                        "message": campaign.message,
                        "status": campaign.status,
                        "send_at": campaign.send_at,
                        "created_at": campaign.created_at,
                        "audience_count": campaign.audience_count,
                    }
                )
        for item in result:
            item["stats"] = self.campaign_stats(item["id"])
        return result

    def campaign_stats(self, campaign_id: int) -> dict:
        """sent (reached the customer's channel), delivered (shown on an open
        page), skipped by reason, failed, waiting, clicked."""
        with session_scope(self.engine) as session:
            rows = session.execute(
                select(Notice.status, Notice.reason, func.count(Notice.id), func.count(Notice.clicked_at))
                .where(Notice.campaign_id == campaign_id)
                .group_by(Notice.status, Notice.reason)
            ).all()
        stats: dict[str, Any] = {"sent": 0, "delivered": 0, "skipped": {}, "failed": 0, "waiting": 0, "clicked": 0}
        for status, reason, count, clicked in rows:
            stats["clicked"] += clicked
            if status in ("sent", "delivered"):
                stats["sent"] += count
                if status == "delivered":
                    stats["delivered"] += count
            elif status in ("skipped", "cancelled"):
                stats["skipped"][reason or status] = stats["skipped"].get(reason or status, 0) + count
            elif status == "failed":
                stats["failed"] += count
            else:
                stats["waiting"] += count
        stats["converted"] = self.converted(campaign_id)
        return stats

    def converted(self, campaign_id: int) -> int:
        """Customers reached by the campaign who, within 7 days after their
        notice was sent, ordered a promoted product (one in the promotion's
        category; any product when it has none) or asked about one in the
        chat: a user turn of theirs in the analytics tables (fed by the event
        broker) naming such a product or the category. A turn is theirs when
        its conversation carried their customer token (customer_key
        'customer:<id>') or it came from their WeChat openid."""
        with session_scope(self.engine) as session:
            found = session.execute(
                select(Campaign.expanded_at, Promotion.category)
                .join(Promotion, Promotion.id == Campaign.promotion_id)
                .where(Campaign.id == campaign_id)
            ).first()
            if found is None or found.expanded_at is None:
                return 0
            dialect = session.get_bind().dialect.name
            week_after = _plus_days(Notice.sent_at, 7, dialect)
            ordered = (
                select(Order.id)
                .where(
                    Order.customer_id == Notice.customer_id,
                    Order.created_at >= Notice.sent_at,
                    Order.created_at <= week_after,
                    Order.status != "cancelled",
                )
                .correlate(Notice)
            )
            names: list[str] = []
            if found.category:
                ordered = ordered.where(
                    Order.id.in_(
                        select(OrderItem.order_id)
                        .join(Product, Product.id == OrderItem.product_id)
                        .where(Product.category == found.category)
                    )
                )
                names = list(session.execute(select(Product.name).where(Product.category == found.category)).scalars())
            reached = [ordered.exists()]
            if _has_analytics(session):
                reached += self._asked(found.category, names, week_after)
            return int(
                session.execute(
                    select(func.count(Notice.id)).where(
                        Notice.campaign_id == campaign_id,
                        Notice.status.in_(("sent", "delivered")),
                        or_(*reached),
                    )
                ).scalar_one()
            )

    @staticmethod
    def _asked(category: str | None, names: list[str], week_after: Any) -> list[Any]:
        """EXISTS conditions (correlated with Notice): a user turn of the
        notice's customer within the week after it naming a product of
        `category` or the category itself (with no category: any product or
        category). Two conditions, one per way of knowing the customer, so
        that each reads its own index."""
        from kefu.analytics.store import conversations, user_turns

        turns = user_turns.c
        if category:
            # products / categories are "|"-joined catalogue names
            products = literal("|", String) + turns.products + literal("|", String)
            categories = literal("|", String) + turns.categories + literal("|", String)
            about = or_(
                categories.like(f"%|{escape_like(category)}|%", escape=LIKE_ESCAPE),
                *[products.like(f"%|{escape_like(name)}|%", escape=LIKE_ESCAPE) for name in names if name],
            )
        else:
            about = or_(turns.products != "", turns.categories != "")
        in_week = and_(turns.at >= Notice.sent_at, turns.at <= week_after, about)
        by_token = (
            select(turns.id)
            .join(conversations, conversations.c.id == turns.conversation_id)
            .where(
                conversations.c.customer_key == literal("customer:", String) + cast(Notice.customer_id, String),
                in_week,
            )
            .correlate(Notice)
        )
        openid = select(Customer.wechat_openid).where(Customer.id == Notice.customer_id).correlate(Notice)
        by_wechat = (
            select(turns.id)
            .where(turns.sender_id == literal("wechat-", String) + openid.scalar_subquery(), in_week)
            .correlate(Notice)
        )
        return [by_token.exists(), by_wechat.exists()]

    def purge(self) -> None:
        """Tests and benchmarks: forget every notice and campaign."""
        with session_scope(self.engine) as session:
            for model in (NoticeAttempt, WeChatWindowSlot, Notice, Campaign, NoticeCursor, WeChatContact):
                session.execute(delete(model))
