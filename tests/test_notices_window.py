"""WeChat's 5 messages per 48-hour window hold when several senders send to
one follower at the same instant: the slots are taken in the database
(primary key), on SQLite and PostgreSQL, by threads with engines of their
own (as separate worker processes would be)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from kefu.db.engine import make_engine, session_scope, utcnow
from kefu.db.models import Customer, Notice, NoticeAttempt, WeChatContact, WeChatWindowSlot
from kefu.notices.delivery import Deliverer
from kefu.notices.rules import WECHAT_MAX_IN_WINDOW
from kefu.notices.store import NoticeStore


def quietly(statement):
    """A bulk DELETE (its WHERE reads other tables: no in-session sync)."""
    return statement.execution_options(synchronize_session=False)


class SlowWeChat:
    """A recording fake that takes a while to answer, as WeChat does: the
    window between the count and the send is wide open."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def send_text(self, openid: str, text: str) -> None:
        time.sleep(0.05)
        with self._lock:
            self.sent.append(openid)


def follower(url: str) -> tuple[int, str]:
    """A new customer bound to an openid who wrote to the account an hour ago."""
    openid = f"oWin{uuid.uuid4().hex[:16]}"
    engine = make_engine(url)
    with session_scope(engine) as session:
        customer = Customer(name="窗口", phone="13700000000", wechat_openid=openid, created_at=utcnow())
        session.add(customer)
        session.flush()
        customer_id = int(customer.id)
    NoticeStore(engine).wechat_wrote(openid, utcnow() - timedelta(hours=1))
    return customer_id, openid


def forget(url: str, customer_id: int, openid: str) -> None:
    engine = make_engine(url)
    with session_scope(engine) as session:
        ids = select(Notice.id).where(Notice.customer_id == customer_id)
        session.execute(quietly(delete(WeChatWindowSlot).where(WeChatWindowSlot.openid == openid)))
        session.execute(quietly(delete(NoticeAttempt).where(NoticeAttempt.notice_id.in_(ids))))
        session.execute(quietly(delete(Notice).where(Notice.customer_id == customer_id)))
        session.execute(quietly(delete(WeChatContact).where(WeChatContact.openid == openid)))
        session.execute(quietly(delete(Customer).where(Customer.id == customer_id)))


def run_together(count: int, target) -> list:
    """`target(i)` in `count` threads released at the same instant."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        results[i] = target(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_eight_senders_take_five_slots_at_most(shop_url):
    customer_id, openid = follower(shop_url)
    try:
        store = NoticeStore(make_engine(shop_url))
        ids = [store.add(f"slot:{openid}:{i}", customer_id, "service", "external", [{"text": "x"}]) for i in range(8)]
        stores = [NoticeStore(make_engine(shop_url)) for _ in ids]
        slots = run_together(len(ids), lambda i: stores[i].take_wechat_slot(openid, ids[i]))
        taken = sorted(s for s in slots if s is not None)
        assert taken == [1, 2, 3, 4, 5]
        # A notice asking again in the same window keeps its slot; a released one frees it.
        holder = ids[slots.index(3)]
        assert store.take_wechat_slot(openid, holder) == 3
        store.release_wechat_slot(openid, holder)
        late = next(ids[i] for i, s in enumerate(slots) if s is None)
        assert store.take_wechat_slot(openid, late) == 3
        # The follower writes again: a new window, five new slots.
        store.wechat_wrote(openid)
        assert store.take_wechat_slot(openid, holder) == 1
    finally:
        forget(shop_url, customer_id, openid)


@pytest.mark.parametrize("batched", [False, True], ids=["one by one", "in batches"])
def test_two_sender_threads_never_send_a_sixth_message_in_the_window(shop_url, batched):
    customer_id, openid = follower(shop_url)
    try:
        store = NoticeStore(make_engine(shop_url))
        ids = [store.add(f"race:{openid}:{i}", customer_id, "service", "external", [{"text": "x"}]) for i in range(12)]
        fake = SlowWeChat()
        # Two workers, each with its own engine, each sending its half one by one.
        deliverers = [Deliverer(NoticeStore(make_engine(shop_url)), fake) for _ in range(2)]
        halves = [ids[0::2], ids[1::2]]
        if batched:  # as the queue's deliver job does: claimed, checked and slotted by batch
            outcomes = run_together(2, lambda i: deliverers[i].deliver_many(halves[i]))
        else:
            outcomes = run_together(2, lambda i: [deliverers[i].deliver(n) for n in halves[i]])
        results = [o.result for side in outcomes for o in side]
        assert len(fake.sent) == WECHAT_MAX_IN_WINDOW
        assert results.count("sent") == WECHAT_MAX_IN_WINDOW
        assert {o.reason for side in outcomes for o in side if o.result != "sent"} == {"wechat_window_full"}
        with session_scope(store.engine) as session:
            sent_rows = session.execute(
                select(func.count(NoticeAttempt.id)).where(
                    NoticeAttempt.address == openid, NoticeAttempt.outcome == "sent"
                )
            ).scalar()
        assert sent_rows == WECHAT_MAX_IN_WINDOW
    finally:
        forget(shop_url, customer_id, openid)


def test_schema_step_7_gives_messages_already_sent_their_slots(tmp_path):
    """A database upgraded in the middle of a window: what was sent in it
    before the slots existed takes its slots, so the window is not counted
    from zero; running the step again adds nothing."""
    from kefu.db.engine import MIGRATIONS, ensure_schema
    from kefu.shop.demo import seed

    engine = make_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    seed(engine, orders=20)
    ensure_schema(engine)
    customer_id, openid = follower(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    store = NoticeStore(engine)
    for i in range(3):  # three sent in this window, the way the send log records them
        notice_id = store.add(f"old:{i}", customer_id, "service", "external", [{"text": "x"}])
        store.finish(notice_id, "sent", channel="wechat", outcome="sent", address=openid)
    with engine.begin() as conn:
        MIGRATIONS[7](conn)
        MIGRATIONS[7](conn)
    with session_scope(engine) as session:
        slots = sorted(
            session.execute(select(WeChatWindowSlot.slot).where(WeChatWindowSlot.openid == openid)).scalars()
        )
    assert slots == [1, 2, 3]
    fresh = [store.add(f"new:{i}", customer_id, "service", "external", [{"text": "x"}]) for i in range(3)]
    assert [store.take_wechat_slot(openid, n) for n in fresh] == [4, 5, None]
