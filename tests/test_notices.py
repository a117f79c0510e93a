"""Notices: consent, the outbox's once-only keys, WeChat's window with a
recording fake of the customer-service API, quiet hours, the triggers, and
campaigns through dramatiq's in-memory broker. Each test module gets its own
seeded SQLite shop (these tests write to it)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from sqlalchemy import select, update

from kefu.db.engine import make_engine, session_scope, utcnow
from kefu.db.models import (
    AftersalesTicket,
    Customer,
    CustomerTag,
    Notice,
    NoticeConsent,
    Order,
    OrderItem,
    Product,
    ShipmentEvent,
    StaffAccount,
)
from kefu.notices.consent import ConsentService
from kefu.notices.delivery import Deliverer
from kefu.notices.rules import QuietHours, wechat_refusal
from kefu.notices.store import Audience, NoticeStore
from kefu.notices.templates import render
from kefu.notices.triggers import Triggers, UnpaidRule, shipment_kind
from kefu.shop.demo import seed

WANG, LI = 1, 2  # 王小明 (WeChat openid bound), 李娜 (web only)
WANG_OPENID = "oKefuDemoWangXiaoMing0000001"


class RecordingWeChat:
    """Records what would have gone to WeChat; raises what it is told to."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail_with: list[Exception] = []

    def send_text(self, openid: str, text: str) -> None:
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.sent.append((openid, text))


class WeChatError(Exception):
    def __init__(self, errcode: int) -> None:
        super().__init__(f"errcode {errcode}")
        self.errcode = errcode


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("notices-template") / "shop.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    seed(engine, orders=300)
    engine.dispose()
    return path


@pytest.fixture()
def store(seeded, tmp_path) -> NoticeStore:
    """A fresh copy of the seeded shop for each test (these tests write)."""
    path = tmp_path / "shop.sqlite3"
    shutil.copyfile(seeded, path)
    return NoticeStore(make_engine(f"sqlite:///{path}"))


def service_notice(store: NoticeStore, key: str, customer_id: int = WANG) -> int:
    notice_id = store.add(key, customer_id, "service", "external", [{"text": "测试通知"}])
    assert notice_id is not None
    return notice_id


def test_consent_defaults_history_and_withdrawal(store):
    assert store.consent(LI, "service") is True and store.consent(LI, "marketing") is False
    consent = ConsentService(store)
    assert consent.marketing(LI, True, "web-abc") == "subscribed"
    assert consent.marketing(LI, True, "web-abc") == "already_subscribed"
    pending = store.add("campaign:x:2", LI, "marketing", "campaign", [{"text": "优惠"}])
    assert consent.marketing(LI, False, "wechat-o123") == "unsubscribed"
    assert store.consent(LI, "marketing") is False
    history = store.consent_history(LI)
    assert [(h["granted"], h["channel"]) for h in history] == [(True, "web"), (False, "wechat")]
    assert all(isinstance(h["changed_at"], datetime) for h in history)
    # Withdrawing stops what was waiting.
    assert store.get(pending)["status"] == "cancelled"


def test_one_notice_per_key_whatever_repeats(store):
    first = service_notice(store, "shipment:1:1")
    assert store.add("shipment:1:1", WANG, "service", "shipment", [{"text": "again"}]) is None
    deliverer = Deliverer(store, None)
    assert deliverer.deliver(first).result == "kept"
    assert deliverer.deliver(first).result == "not_claimed"  # a repeated job sends nothing
    assert [a["outcome"] for a in store.attempts(first)] == ["kept"]


def test_wechat_window_rules_with_a_recording_fake(store):
    fake = RecordingWeChat()
    deliverer = Deliverer(store, fake)
    # Never wrote to the official account: no customer-service message allowed.
    assert deliverer.deliver(service_notice(store, "a")).reason == "wechat_never_wrote"
    # Last message 49 hours ago: outside the 48-hour window.
    store.wechat_wrote(WANG_OPENID, utcnow() - timedelta(hours=49))
    outside = service_notice(store, "b")
    assert deliverer.deliver(outside).reason == "wechat_window_closed"
    assert store.get(outside)["status"] == "skipped" and store.get(outside)["reason"] == "wechat_window_closed"
    assert fake.sent == []
    # Inside the window: five go out, the sixth is skipped.
    store.wechat_wrote(WANG_OPENID, utcnow() - timedelta(hours=1))
    results = [deliverer.deliver(service_notice(store, f"in-{i}")).result for i in range(6)]
    assert results == ["sent"] * 5 + ["skipped"]
    assert len(fake.sent) == 5 and {openid for openid, _ in fake.sent} == {WANG_OPENID}
    assert store.lost(0) == []  # nothing left waiting
    # The customer writes again: a new window.
    store.wechat_wrote(WANG_OPENID)
    assert deliverer.deliver(service_notice(store, "after-reply")).result == "sent"
    assert len(fake.sent) == 6


def test_opted_out_customer_gets_nothing(store):
    fake = RecordingWeChat()
    store.wechat_wrote(WANG_OPENID)
    store.set_consent(WANG, "service", False, "web")
    notice = service_notice(store, "c")
    outcome = Deliverer(store, fake).deliver(notice)
    assert (outcome.result, outcome.reason) == ("skipped", "opted_out")
    assert fake.sent == []
    marketing = store.add("m", LI, "marketing", "campaign", [{"text": "优惠"}])
    assert Deliverer(store, fake).deliver(marketing).reason == "opted_out"  # never agreed


def test_temporary_failure_is_retried_with_back_off_and_refusals_are_final(store):
    fake = RecordingWeChat()
    store.wechat_wrote(WANG_OPENID)
    fake.fail_with = [ConnectionError("reset"), WeChatError(-1)]
    deliverer = Deliverer(store, fake)
    notice = service_notice(store, "d")
    first = deliverer.deliver(notice)
    assert first.result == "retry" and first.retry_at > utcnow()
    assert deliverer.deliver(notice).result == "not_claimed"  # not before its time
    with session_scope(store.engine) as session:
        session.execute(update(Notice).where(Notice.id == notice).values(not_before=utcnow()))
    second = deliverer.deliver(notice)
    assert second.result == "retry" and second.retry_at - utcnow() > first.retry_at - utcnow() - timedelta(seconds=1)
    with session_scope(store.engine) as session:
        session.execute(update(Notice).where(Notice.id == notice).values(not_before=utcnow()))
    assert deliverer.deliver(notice).result == "sent"
    assert [a["outcome"] for a in store.attempts(notice)] == ["retry", "retry", "sent"]
    assert store.get(notice)["attempts"] == 3
    fake.fail_with = [WeChatError(45015)]
    refused = service_notice(store, "e")
    assert deliverer.deliver(refused).reason == "wechat_window_closed"


def test_wechat_refusal_rule():
    now = datetime(2026, 11, 28, 12, 0)
    assert wechat_refusal(now, now - timedelta(hours=47, minutes=59), 4) is None
    assert wechat_refusal(now, now - timedelta(hours=48, minutes=1), 0) == "wechat_window_closed"
    assert wechat_refusal(now, now - timedelta(hours=1), 5) == "wechat_window_full"


def test_quiet_hours():
    quiet = QuietHours(22, 8)
    # 14:30 UTC is 22:30 in China; 23:59 UTC is 07:59; 00:00 UTC is 08:00.
    assert quiet.is_quiet(datetime(2026, 11, 28, 14, 30))
    assert quiet.is_quiet(datetime(2026, 11, 28, 23, 59))
    assert not quiet.is_quiet(datetime(2026, 11, 29, 0, 0))
    assert not quiet.is_quiet(datetime(2026, 11, 28, 13, 59))
    assert quiet.next_allowed(datetime(2026, 11, 28, 14, 30)) == datetime(2026, 11, 29, 0, 0)
    assert quiet.next_allowed(datetime(2026, 11, 28, 3, 0)) == datetime(2026, 11, 28, 3, 0)
    # A daytime range (configurable): 08:59 China time is before it, 09:00 inside.
    assert not QuietHours(9, 17).is_quiet(datetime(2026, 11, 28, 0, 59))
    assert QuietHours(9, 17).is_quiet(datetime(2026, 11, 28, 1, 0))


def test_marketing_waits_for_the_end_of_quiet_hours_but_service_does_not(store):
    night = datetime(2026, 11, 28, 15, 0)  # 23:00 in China
    store.set_consent(LI, "marketing", True, "web")
    deliverer = Deliverer(store, None, QuietHours(22, 8), clock=lambda: night)
    marketing = store.add("mk", LI, "marketing", "campaign", [{"text": "优惠"}])
    outcome = deliverer.deliver(marketing)
    assert (outcome.result, outcome.reason) == ("postponed", "quiet_hours")
    row = store.get(marketing)
    assert row["status"] == "pending" and row["not_before"] == datetime(2026, 11, 29, 0, 0)
    assert deliverer.deliver(service_notice(store, "svc", LI)).result == "kept"


def test_marketing_text_says_how_to_stop():
    [message] = render("utter_notice_campaign", message="双十二手机满3000减300")
    assert "双十二手机满3000减300" in message["text"] and "TD" in message["text"] and "退订" in message["text"]


def test_shipment_events_become_one_notice_each(store):
    triggers = Triggers(store)
    assert triggers.shipments() == []  # the first poll only sets the high-water mark
    mark = store.cursor("shipment_events")[0]
    with session_scope(store.engine) as session:
        order = session.execute(select(Order).where(Order.order_no == "2026000000000008")).scalar_one()
        session.add(
            ShipmentEvent(
                order_id=order.id,
                happened_at=utcnow(),
                location="派送网点",
                description="快件正在派送中，快递员会尽快送达",
            )
        )
        session.add(
            ShipmentEvent(
                order_id=order.id, happened_at=utcnow(), location="中转", description="快件已到达杭州转运中心"
            )
        )
    written = triggers.shipments()
    assert len(written) == 1
    notice = store.get(written[0])
    messages = json.loads(notice["body"])
    assert notice["customer_id"] == WANG and notice["topic"] == "shipment"
    assert "2026000000000008" in messages[0]["text"] and "派送中" in messages[0]["text"]
    assert messages[0]["buttons"][0]["payload"] == '/track_shipment{"order_no": "2026000000000008"}'
    assert triggers.shipments() == []
    store.set_cursor("shipment_events", mark)  # a poll that repeats these events adds nothing
    assert triggers.shipments() == []


def test_shipment_kinds():
    assert shipment_kind("【顺丰】已揽收，快件正在发往上海") == "shipped"
    assert shipment_kind("快件已签收，感谢使用") == "delivered"
    assert shipment_kind("快件异常：地址不详") == "exception"
    assert shipment_kind("快件已到达上海转运中心") is None


def test_unpaid_reminder_goes_once_only(store):
    rule = UnpaidRule(close_minutes=60, remind_minutes=15)
    triggers = Triggers(store, rule)
    now = utcnow()
    with session_scope(store.engine) as session:
        session.execute(
            update(Order).where(Order.status == "pending_payment").values(created_at=now - timedelta(days=2))
        )
        order = session.execute(select(Order).where(Order.order_no == "2026000000000007")).scalar_one()
        order.created_at = now - timedelta(minutes=40)  # closes in 20 minutes: not yet
    assert triggers.unpaid_orders(now) == []
    later = now + timedelta(minutes=6)  # 14 minutes left
    [reminder] = triggers.unpaid_orders(later)
    assert "14分钟" in json.loads(store.get(reminder)["body"])[0]["text"]
    assert triggers.unpaid_orders(later + timedelta(minutes=1)) == []
    assert triggers.unpaid_orders(later + timedelta(minutes=10)) == []
    Deliverer(store, None).deliver(reminder)
    assert triggers.unpaid_orders(later + timedelta(minutes=12)) == []


def test_ticket_status_changes(store):
    triggers = Triggers(store)
    assert triggers.tickets(utcnow()) == []
    with session_scope(store.engine) as session:
        ticket = session.execute(
            select(AftersalesTicket).where(AftersalesTicket.customer_id == WANG).limit(1)
        ).scalar_one()
        ticket.status, ticket.updated_at = "approved", utcnow() + timedelta(seconds=1)
    [notice] = triggers.tickets(utcnow())
    assert "已通过" in json.loads(store.get(notice)["body"])[0]["text"]
    assert triggers.tickets(utcnow()) == []


def opt_in(store: NoticeStore, customer_ids) -> None:
    with session_scope(store.engine) as session:
        for customer_id in customer_ids:
            session.merge(
                NoticeConsent(
                    customer_id=customer_id, kind="marketing", granted=True, channel="web", changed_at=utcnow()
                )
            )


def test_audience_rules_match_their_sql(store):
    opt_in(store, range(1, 120))
    with session_scope(store.engine) as session:
        staff = StaffAccount(name="admin", role="admin", password_hash="x", created_at=utcnow())
        session.add(staff)
        session.flush()
        for customer_id, conversation in ((5, "c5"), (150, "c150")):  # 150 did not opt in
            session.add(
                CustomerTag(
                    customer_id=customer_id,
                    conversation_id=conversation,
                    tag="VIP",
                    staff_id=staff.id,
                    created_at=utcnow(),
                )
            )
    assert store.audience_ids(Audience(tag="VIP")) == {5}
    everyone = store.audience_ids(Audience())
    assert everyone == set(range(1, 120))
    phones = store.audience_ids(Audience(category="手机", days=365))
    with session_scope(store.engine) as session:
        expected = set(
            session.execute(
                select(Order.customer_id)
                .join(OrderItem, OrderItem.order_id == Order.id)
                .join(Product, Product.id == OrderItem.product_id)
                .where(Product.category == "手机", Order.created_at >= utcnow() - timedelta(days=365))
                .where(Order.status != "cancelled", Order.customer_id < 120)
            ).scalars()
        )
        unpaid = set(
            session.execute(
                select(Order.customer_id).where(Order.status == "pending_payment", Order.customer_id < 120)
            ).scalars()
        )
    assert phones == expected and phones
    assert store.audience_ids(Audience(unpaid=True)) == unpaid
    assert store.audience_count(Audience(unpaid=True)) == len(unpaid)


@pytest.fixture()
def jobs(store):
    from kefu.notices.queue import declare, make_broker

    broker = make_broker("stub://")
    jobs = declare(broker, store, Deliverer(store, None, None))
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    yield jobs
    worker.stop()
    broker.close()


def drain(jobs) -> None:
    jobs.broker.join("kefu-notices")


@pytest.mark.slow  # a dramatiq worker or the whole demo shop: about a second
def test_a_campaign_reaches_its_audience_once_each_through_the_queue(store, jobs):
    opt_in(store, range(1, 200, 2))
    audience = Audience(category="手机", days=365)
    expected = store.audience_ids(audience)
    promotion = store.promotions()[0]["id"]
    campaign = store.create_campaign(promotion, audience, "手机节：满3000减300", utcnow(), staff_id=None)
    jobs.tick.send()
    drain(jobs)
    drain(jobs)
    with session_scope(store.engine) as session:
        rows = session.execute(select(Notice.customer_id, Notice.status).where(Notice.campaign_id == campaign)).all()
    assert sorted(r.customer_id for r in rows) == sorted(expected)  # exactly the set, once each
    assert {r.status for r in rows} == {"sent"}  # web customers: kept for their page
    stats = store.campaign_stats(campaign)
    assert stats["sent"] == len(expected) and stats["waiting"] == 0 and stats["converted"] == 0
    # One of them orders a phone afterwards: converted.
    buyer = min(expected)
    with session_scope(store.engine) as session:
        phone = session.execute(select(Product).where(Product.category == "手机").limit(1)).scalar_one()
        order = Order(
            order_no="2099000000000001",
            customer_id=buyer,
            status="paid",
            total_cents=phone.price_cents,
            created_at=utcnow() + timedelta(seconds=1),
            ship_name="买家",
            ship_phone="13800000000",
            ship_address="上海市",
        )
        session.add(order)
        session.flush()
        session.add(OrderItem(order_id=order.id, product_id=phone.id, quantity=1, unit_price_cents=phone.price_cents))
    assert store.campaign_stats(campaign)["converted"] == 1
    assert store.campaigns()[0]["status"] == "done"
    # A second expansion (a repeated job) adds nothing.
    jobs.expand_campaign.send(campaign)
    drain(jobs)
    with session_scope(store.engine) as session:
        assert len(session.execute(select(Notice.id).where(Notice.campaign_id == campaign)).all()) == len(expected)


@pytest.mark.slow  # a dramatiq worker or the whole demo shop: about a second
def test_a_cancelled_campaign_sends_nothing_more(store, jobs):
    opt_in(store, range(1, 50))
    promotion = store.promotions()[0]["id"]
    campaign = store.create_campaign(promotion, Audience(), "活动", utcnow() + timedelta(hours=1), staff_id=None)
    assert store.cancel_campaign(campaign)
    jobs.tick.send()
    drain(jobs)
    assert store.campaign_stats(campaign)["sent"] == 0
    assert store.campaigns()[0]["status"] == "cancelled"


@pytest.mark.slow  # a dramatiq worker or the whole demo shop: about a second
def test_the_tick_sends_new_service_notices(store, jobs):
    jobs.tick.send()  # sets the marks
    drain(jobs)
    with session_scope(store.engine) as session:
        order = session.execute(select(Order).where(Order.order_no == "2026000000000013")).scalar_one()
        session.add(
            ShipmentEvent(
                order_id=order.id, happened_at=utcnow(), location="收件地址", description="快件已签收，感谢使用"
            )
        )
        zhang = session.get(Customer, order.customer_id)
        zhang.wechat_openid = None  # reached on the web page in this test
    jobs.tick.send()
    drain(jobs)
    [kept] = store.kept_for_web(order.customer_id)
    assert "已签收" in kept["messages"][0]["text"]


def test_chat_consent_action_records_the_choice_of_a_known_customer_only(store):
    import asyncio

    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

    from actions.common import Services, use_services
    from actions.notices import ActionMarketingConsent, use_consent_service
    from kefu.shop.demo import demo_rows
    from kefu.shop.memory import InMemoryShopRepository

    def say(intent: str, text: str, slots: dict, sender: str) -> list[str]:
        latest = {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": []}
        tracker = Tracker(sender, slots, latest, [{"event": "user", "text": text}], False, None, {}, "action_listen")
        dispatcher = CollectingDispatcher()
        action: Any = ActionMarketingConsent()  # run() is decorated: typed as an awaitable, not a coroutine
        asyncio.run(action.run(dispatcher, tracker, {}))
        return [m.get("response") for m in dispatcher.messages]

    use_services(Services.over(InMemoryShopRepository.from_rows(demo_rows(orders=20))))
    use_consent_service(ConsentService(store))
    try:
        assert say("subscribe_marketing", "订阅优惠", {}, "web-anon") == ["utter_marketing_consent_needs_login"]
        assert say("subscribe_marketing", "订阅优惠", {"customer_id": LI}, "web-1") == ["utter_marketing_subscribed"]
        assert store.consent(LI, "marketing") is True
        assert say("unsubscribe_marketing", "TD", {"customer_id": LI}, "wechat-oLi") == ["utter_marketing_unsubscribed"]
        assert say("unsubscribe_marketing", "退订", {"customer_id": LI}, "web-1") == [
            "utter_marketing_already_unsubscribed"
        ]
        assert [(h["granted"], h["channel"]) for h in store.consent_history(LI)] == [(True, "web"), (False, "wechat")]
    finally:
        use_services(None)
        use_consent_service(None)


def test_service_notices_are_stopped_and_restarted_by_chat(store):
    """不要再发物流通知 / 打开物流通知 / 退订通知: the subscription intents with
    the notice_kind entity, through the action, stored like marketing."""
    import asyncio

    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

    from actions.notices import ActionMarketingConsent, use_consent_service
    from kefu.nlu.rules import extract

    def say(intent: str, text: str, sender: str) -> list[str]:
        entities = [
            {"entity": e.entity, "value": e.value, "start": e.start, "end": e.end} for e in extract(text.lower())
        ]
        latest = {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": entities}
        slots = {"customer_id": LI}
        tracker = Tracker(sender, slots, latest, [{"event": "user", "text": text}], False, None, {}, "action_listen")
        dispatcher = CollectingDispatcher()
        action: Any = ActionMarketingConsent()
        asyncio.run(action.run(dispatcher, tracker, {}))
        return [m.get("response") for m in dispatcher.messages]

    use_consent_service(ConsentService(store))
    try:
        waiting = service_notice(store, "shipment:77:2", LI)
        assert say("unsubscribe_marketing", "不要再发物流通知", "wechat-oLi") == ["utter_service_unsubscribed"]
        assert store.consent(LI, "service") is False and store.consent(LI, "marketing") is False
        assert store.get(waiting)["status"] == "cancelled"  # what was waiting is not sent
        later = service_notice(store, "shipment:78:2", LI)
        assert Deliverer(store, None).deliver(later).reason == "opted_out"
        assert say("unsubscribe_marketing", "别再发物流消息了", "web-1") == ["utter_service_already_unsubscribed"]
        assert say("subscribe_marketing", "物流通知还是打开吧", "web-1") == ["utter_service_subscribed"]
        assert Deliverer(store, None).deliver(service_notice(store, "shipment:79:2", LI)).result == "kept"
        # Marketing alone is untouched by the service switch, and the other way round.
        assert say("subscribe_marketing", "订阅优惠", "web-1") == ["utter_marketing_subscribed"]
        assert store.consent(LI, "service") is True and store.consent(LI, "marketing") is True
        # 退订通知: both kinds.
        assert say("unsubscribe_marketing", "退订通知", "web-1") == ["utter_all_notices_unsubscribed"]
        assert store.consent(LI, "service") is False and store.consent(LI, "marketing") is False
        history = [(h["kind"], h["granted"], h["channel"]) for h in store.consent_history(LI)]
        assert history == [
            ("service", False, "wechat"),
            ("service", True, "web"),
            ("marketing", True, "web"),
            ("service", False, "web"),
            ("marketing", False, "web"),
        ]
        assert all(isinstance(h["changed_at"], datetime) for h in store.consent_history(LI))
    finally:
        use_consent_service(None)


def test_notice_kind_entity_rule():
    from kefu.nlu.rules import extract

    def kind(text: str) -> object:
        return next((e.value for e in extract(text) if e.entity == "notice_kind"), None)

    assert kind("不要再发物流通知") == "service"
    assert kind("关闭发货提醒") == "service"
    assert kind("售后进度的提醒帮我开一下") == "service"
    assert kind("别给我发订单消息了") == "service"
    assert kind("退订通知") == "all"
    assert kind("关掉所有通知") == "all"
    for marketing in ("退订", "td", "退订优惠通知", "别给我发活动了", "有活动通知我", "关掉活动通知"):
        assert kind(marketing) is None, marketing
    assert kind("到货了通知我") is None  # 通知我 asks to be told, it names no notices


@pytest.mark.slow  # a dramatiq worker or the whole demo shop: about a second
def test_demo_advance_makes_notices_for_the_showcase_customer(store):
    from kefu.notices.demo import advance

    rule = UnpaidRule(close_minutes=24 * 60, remind_minutes=60)
    triggers = Triggers(store, rule)
    triggers.poll()  # the marks
    lines = advance(store.engine, unpaid=rule)
    assert any("2026000000000008" in line and "派送中" in line for line in lines)
    assert any("2026000000000006" in line and "已发货" in line for line in lines)
    assert any("2026000000000007" in line for line in lines)
    written = [store.get(i) for i in triggers.poll()]
    topics = {(n["topic"], n["customer_id"]) for n in written}
    assert {("shipment", WANG), ("unpaid", WANG)} <= topics
    assert ("ticket", WANG) in topics  # the refund ticket of 2026000000000010 was decided
    advance(store.engine, unpaid=rule)
    second = [store.get(i) for i in triggers.poll()]
    texts = " ".join(json.loads(n["body"])[0]["text"] for n in second if n["customer_id"] == WANG)
    assert "已签收" in texts


def test_a_batch_is_decided_like_single_notices(store):
    fake = RecordingWeChat()
    store.wechat_wrote(WANG_OPENID)
    store.set_consent(3, "service", False, "web")
    ids = [
        service_notice(store, "b-wechat", WANG),
        service_notice(store, "b-web", LI),
        service_notice(store, "b-optout", 3),
    ]
    done = service_notice(store, "b-done", LI)
    Deliverer(store, fake).deliver(done)
    outcomes = {o.notice_id: (o.result, o.reason) for o in Deliverer(store, fake).deliver_many(ids + [done])}
    assert outcomes == {
        ids[0]: ("sent", None),
        ids[1]: ("kept", None),
        ids[2]: ("skipped", "opted_out"),
        done: ("not_claimed", None),
    }
    assert [store.get(i)["status"] for i in ids] == ["sent", "sent", "skipped"]
    assert [len(store.attempts(i)) for i in ids + [done]] == [1, 1, 1, 1]
    assert fake.sent == [(WANG_OPENID, "测试通知")]
    assert Deliverer(store, fake).deliver_many(ids) == [
        type(Deliverer(store, fake).deliver(ids[0]))(i, "not_claimed") for i in ids
    ]


def test_a_batch_counts_its_own_wechat_messages_against_the_window(store):
    fake = RecordingWeChat()
    store.wechat_wrote(WANG_OPENID, utcnow() - timedelta(hours=2))
    Deliverer(store, fake).deliver(service_notice(store, "w-before"))  # one already sent in the window
    ids = [service_notice(store, f"w-{i}") for i in range(6)]
    results = [o.result for o in Deliverer(store, fake).deliver_many(ids)]
    assert results == ["sent"] * 4 + ["skipped"] * 2
    assert len(fake.sent) == 5
    assert {store.get(i)["reason"] for i in ids[4:]} == {"wechat_window_full"}


def test_the_web_relay_pushes_each_sent_notice_once_even_an_old_one_sent_late(store, monkeypatch):
    import asyncio

    from kefu.notices import web

    class Hub:
        def __init__(self) -> None:
            self.published: list[int] = []

        def listeners(self, topic: str) -> int:
            return 1

        def publish(self, topic: str, item: dict) -> None:
            self.published.append(item["notice"])

    monkeypatch.setattr(web, "PAGE_ROWS", 3)  # a burst bigger than a page
    hub = Hub()
    relay = web.NoticeRelay(store, hub)
    deliverer = Deliverer(store, None)
    early = service_notice(store, "early", LI)  # made now, sent later (quiet hours, a retry)
    asyncio.run(relay.tick())  # the first round only notes the time
    burst = [service_notice(store, f"burst-{i}", LI) for i in range(7)]
    for notice_id in burst:
        deliverer.deliver(notice_id)
    asyncio.run(relay.tick())
    assert hub.published == burst
    deliverer.deliver(early)
    asyncio.run(relay.tick())
    asyncio.run(relay.tick())
    assert hub.published == burst + [early]
