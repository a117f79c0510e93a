"""The real bot over the REST channel, with the event broker of
endpoints.yml: what customers say reaches the analytics tables through
Rasa's broker and the consumer, and moves the right figures; card numbers
arrive masked."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

pytestmark = [pytest.mark.e2e, pytest.mark.model]


@pytest.fixture(scope="module")
def bot(trained_model, tmp_path_factory):
    from kefu.db.engine import make_engine
    from kefu.shop.demo import seed
    from kefu.testing import running_servers

    url = f"sqlite:///{tmp_path_factory.mktemp('analytics-e2e') / 'shop.sqlite3'}"
    engine = make_engine(url)
    seed(engine, orders=60)
    with running_servers(trained_model, url) as servers:
        yield servers, engine


def test_conversations_through_the_broker_move_the_figures(bot):
    from kefu.analytics import store
    from kefu.analytics.consumer import SQLBrokerConsumer
    from kefu.analytics.figures import CHINA_OFFSET, Period, compute
    from kefu.testing import CARD, sensitive_leaks

    servers, engine = bot
    servers.say("an-handoff", "你好")
    servers.say("an-handoff", "转人工")
    servers.say("an-fallback", "asdfghjkl")
    servers.say("an-fallback", "？？？")
    servers.say("an-product", "小米14多少钱")
    servers.say("an-card", f"我的卡号是{CARD}")

    # The broker writes a turn's events just after the turn: wait for the last ones.
    consumer = SQLBrokerConsumer(engine)
    for _ in range(50):
        consumer.drain()
        with engine.connect() as db:
            if db.execute(select(func.count()).select_from(store.user_turns)).scalar() >= 6:
                break
        time.sleep(0.1)
    today = (datetime.utcnow() + CHINA_OFFSET).date()
    figures = compute(engine, Period(today - timedelta(days=1), today))
    totals = figures["totals"]
    assert totals["conversations"] == 4 and totals["user_messages"] == 6 and totals["customers"] == 4
    assert {r["reason"]: r["handoffs"] for r in figures["handoff_reasons"]} == {
        "customer_request": 1,
        "two_fallbacks": 1,
    }
    assert totals["bot_settled"] == 2 and totals["fallbacks"] == 2
    assert {g["normalized_text"] for g in figures["not_understood"]} == {"asdfghjkl", "???"}
    assert {r["product"] for r in figures["products"]} == {"小米14"}
    # Every message got a reply, timed.
    assert totals["response_p95_seconds"] is not None and totals["response_p95_seconds"] < 10
    with engine.connect() as db:
        texts = [row.text for row in db.execute(select(store.user_turns.c.text))]
        raw = [row.data for row in db.execute(select(store.broker_events.c.data))]
    assert sensitive_leaks("\n".join(texts)) == [] and sensitive_leaks("\n".join(raw)) == []
