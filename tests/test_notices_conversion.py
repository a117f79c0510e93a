"""A campaign's "converted": ordered a promoted product, or asked about one
in the chat, within 7 days after the customer's notice. The chat side goes
the way it does in production: user events as Rasa's SQL event broker
writes them (analytics_broker_events), applied by the analytics consumer,
joined to the customer by the signed customer token of a logged-in page or
by the WeChat sender id. On SQLite and PostgreSQL (the 7-day arithmetic is
SQL of each)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta, timezone

from sqlalchemy import delete, func, insert, select

from kefu.analytics import store as analytics
from kefu.analytics.consumer import SQLBrokerConsumer
from kefu.db.engine import make_engine, session_scope, utcnow
from kefu.db.models import (
    Campaign,
    Customer,
    CustomerTag,
    Notice,
    NoticeAttempt,
    NoticeConsent,
    Order,
    OrderItem,
    Product,
    Promotion,
    StaffAccount,
)
from kefu.notices.delivery import Deliverer
from kefu.notices.store import Audience, NoticeStore
from kefu.shop.tokens import sign_customer_token

SECRET = "conversion-test-secret"


def quietly(statement):
    """A bulk DELETE (its WHERE reads other tables: no in-session sync)."""
    return statement.execution_options(synchronize_session=False)


def user_event(sender: str, at: float, text: str, entities: list[dict], metadata: dict | None = None) -> dict:
    return {
        "event": "user",
        "sender_id": sender,
        "timestamp": at,
        "text": text,
        "input_channel": "wechat" if sender.startswith("wechat-") else "rest",
        "parse_data": {"intent": {"name": "product_price", "confidence": 0.97}, "entities": entities},
        "metadata": metadata or {},
    }


def test_converted_counts_orders_and_questions_about_the_promoted_products(shop_url, monkeypatch):
    monkeypatch.setenv("KEFU_TOKEN_SECRET", SECRET)
    engine = make_engine(shop_url)
    notices = NoticeStore(engine)
    tag = f"conv{uuid.uuid4().hex[:8]}"
    now = utcnow()
    with session_scope(engine) as session:
        products = session.execute(select(Product.id, Product.name, Product.category, Product.price_cents)).all()
        category = products[0].category
        promoted = next(p for p in products if p.category == category)
        other = next(p for p in products if p.category != category)
        first = session.execute(select(func.max(Customer.id))).scalar() + 1
        staff = StaffAccount(name=f"admin-{tag}", role="admin", password_hash="x", created_at=now)
        session.add(staff)
        session.flush()
        # a: asks about a promoted product on the logged-in page → converted
        # b: asks about a product of another category → not
        # c: says nothing, orders nothing → not
        # d: asks about the promoted category on WeChat → converted
        # e: asks about a promoted product, but 8 days later → not
        # f: orders a promoted product 2 days later → converted
        # g: orders a product of another category → not
        keys = "abcdefg"
        ids = {k: first + i for i, k in enumerate(keys)}
        for k, customer_id in ids.items():
            session.add(
                Customer(
                    id=customer_id,
                    name=f"顾客{k}",
                    phone=f"139{customer_id:08d}"[:11],
                    wechat_openid=f"oConv{tag}{k}" if k == "d" else None,
                    created_at=now,
                )
            )
            session.add(
                NoticeConsent(customer_id=customer_id, kind="marketing", granted=True, channel="web", changed_at=now)
            )
            session.add(
                CustomerTag(
                    customer_id=customer_id, conversation_id=f"{tag}-{k}", tag=tag, staff_id=staff.id, created_at=now
                )
            )
        promotion = Promotion(
            kind="campaign",
            title=f"{category}节",
            description="测试",
            category=category,
            starts_at=now - timedelta(days=1),
            ends_at=now + timedelta(days=10),
        )
        session.add(promotion)
        session.flush()
        promotion_id, staff_id = promotion.id, staff.id

    campaign = notices.create_campaign(promotion_id, Audience(tag=tag), f"{category}节满减", now, staff_id)
    order_ids: list[int] = []
    try:
        assert notices.expand_campaign(campaign, [{"text": "活动"}], now) == len(keys)
        outcomes = Deliverer(notices, None).deliver_many(notices.due(campaign_id=campaign))
        assert {o.result for o in outcomes} == {"kept"} and len(outcomes) == len(keys)
        assert notices.converted(campaign) == 0  # nobody did anything yet

        with session_scope(engine) as session:
            sent_at = session.execute(select(func.min(Notice.sent_at)).where(Notice.campaign_id == campaign)).scalar()
        epoch = sent_at.replace(tzinfo=timezone.utc).timestamp()
        product = [{"entity": "product", "value": promoted.name}]
        events = [
            user_event(
                f"web-{tag}-a",
                epoch + 60,
                f"{promoted.name}多少钱",
                product,
                {"customer_token": sign_customer_token(ids["a"], secret=SECRET, now=epoch)},
            ),
            user_event(
                f"web-{tag}-b",
                epoch + 60,
                f"{other.name}多少钱",
                [{"entity": "product", "value": other.name}],
                {"customer_token": sign_customer_token(ids["b"], secret=SECRET, now=epoch)},
            ),
            user_event(
                f"wechat-oConv{tag}d",
                epoch + 3600,
                f"{category}有什么推荐",
                [{"entity": "category", "value": category}],
            ),
            user_event(
                f"web-{tag}-e",
                epoch + 8 * 86400,
                f"{promoted.name}还有吗",
                product,
                {"customer_token": sign_customer_token(ids["e"], secret=SECRET, now=epoch + 8 * 86400)},
            ),
            # A forged token names nobody: this does not convert c.
            user_event(
                f"web-{tag}-c",
                epoch + 60,
                f"{promoted.name}多少钱",
                product,
                {"customer_token": f"kefu1.{ids['c']}.9999999999.{'0' * 64}"},
            ),
        ]
        with engine.begin() as conn:
            analytics.ensure_tables(engine)
            conn.execute(
                insert(analytics.broker_events),
                [{"sender_id": e["sender_id"], "data": json.dumps(e, ensure_ascii=False)} for e in events],
            )
        SQLBrokerConsumer(engine).drain()
        assert notices.converted(campaign) == 2  # a and d

        with session_scope(engine) as session:
            for key, item, days in (("f", promoted, 2), ("g", other, 1)):
                order = Order(
                    order_no=f"{tag}{key}",
                    customer_id=ids[key],
                    status="paid",
                    total_cents=item.price_cents,
                    created_at=sent_at + timedelta(days=days),
                    ship_name="测试",
                    ship_phone="13900000000",
                    ship_address="测试地址",
                )
                session.add(order)
                session.flush()
                session.add(
                    OrderItem(order_id=order.id, product_id=item.id, quantity=1, unit_price_cents=item.price_cents)
                )
                order_ids.append(order.id)
        assert notices.converted(campaign) == 3  # a, d, f

        # The chat side read independently: the rows the consumer wrote, the
        # customer of each conversation, what each turn was about and when.
        with engine.connect() as conn:
            turns, conversations = analytics.user_turns, analytics.conversations
            rows = conn.execute(
                select(
                    conversations.c.customer_key, turns.c.sender_id, turns.c.products, turns.c.categories, turns.c.at
                )
                .join(conversations, conversations.c.id == turns.c.conversation_id)
                .where(turns.c.sender_id.like(f"%{tag}%"))
            ).all()
        assert len(rows) == len(events)
        asked = {
            key if key.startswith("customer:") else sender
            for key, sender, products, categories, at_ in rows
            if (promoted.name in products.split("|") or category in categories.split("|"))
            and sent_at <= at_ <= sent_at + timedelta(days=7)
        }
        assert asked == {f"customer:{ids['a']}", f"wechat-oConv{tag}d", f"web-{tag}-c"}  # c's token was forged
        assert notices.campaign_stats(campaign)["converted"] == 3
    finally:
        with session_scope(engine) as session:
            session.execute(quietly(delete(OrderItem).where(OrderItem.order_id.in_(order_ids))))
            session.execute(quietly(delete(Order).where(Order.id.in_(order_ids))))
            session.execute(
                quietly(
                    delete(NoticeAttempt).where(
                        NoticeAttempt.notice_id.in_(select(Notice.id).where(Notice.campaign_id == campaign))
                    )
                )
            )
            session.execute(quietly(delete(Notice).where(Notice.campaign_id == campaign)))
            session.execute(quietly(delete(Campaign).where(Campaign.id == campaign)))
            session.execute(quietly(delete(Promotion).where(Promotion.id == promotion_id)))
            session.execute(quietly(delete(CustomerTag).where(CustomerTag.tag == tag)))
            session.execute(quietly(delete(NoticeConsent).where(NoticeConsent.customer_id.in_(list(ids.values())))))
            session.execute(quietly(delete(Customer).where(Customer.id.in_(list(ids.values())))))
            session.execute(quietly(delete(StaffAccount).where(StaffAccount.id == staff_id)))
        engine.dispose()
