"""A fixed set of conversations scripted over the REST channel against the
real bot (trained model, action server, a freshly seeded shop with no
history), with hand-offs, fallbacks, an after-sales ticket, a refused
request and ratings; every figure checked exactly:

- through the event broker of endpoints.yml (SQL, into the shop database)
  and the consumer;
- through Rasa's pika broker and RabbitMQ, with a consumer that dies after
  its commit and before its acknowledgement halfway (its batch comes back),
  a second consumer, and one event delivered twice. Both paths give the
  same figures.

Card numbers arrive masked."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from kefu.shop.demo import showcase

pytestmark = [pytest.mark.e2e, pytest.mark.model]
CASES = showcase()


def script() -> list[tuple[str, list[str]]]:
    from kefu.testing import CARD

    return [
        # settled by the bot, rated 5
        ("an-product", ["你好", "小米14多少钱", "谢谢", '/rate_service{"score": 5}']),
        # asks for a person
        ("an-handoff", ["你好", "转人工"]),
        # two misunderstandings in a row: handed off
        ("an-fallback", ["asdfghjkl", "？？？"]),
        # a return: verified, one ticket
        (
            "an-return",
            [
                "我要退货",
                CASES["delivered_2d"]["order_no"],
                CASES["delivered_2d"]["phone_tail"],
                "不喜欢",
                "确认",
            ],
        ),
        # a return past 7 days: verified, refused by the rule
        ("an-refused", ["这个能退吗", CASES["delivered_10d"]["order_no"], CASES["delivered_10d"]["phone_tail"]]),
        # a free-text rating of 1
        ("an-rating", ["差评"]),
        # a card number: masked before anything is stored
        ("an-card", [f"我的卡号是{CARD}"]),
    ]


USER_MESSAGES = sum(len(messages) for _, messages in script())


def fresh_shop(path) -> tuple[str, object]:
    from kefu.db.engine import make_engine
    from kefu.shop.demo import seed

    url = f"sqlite:///{path / 'shop.sqlite3'}"
    engine = make_engine(url)
    seed(engine, orders=60)
    # A shop with no history: every figure below comes from the script.
    with engine.begin() as db:
        for table in ("satisfaction_ratings", "audit_log", "handoff_requests", "aftersales_tickets"):
            db.execute(text(f"DELETE FROM {table}"))
    return url, engine


def chat(servers) -> None:
    for sender, messages in script():
        for message in messages:
            servers.say(sender, message)


def figures_of_today(engine) -> dict:
    from kefu.analytics.figures import CHINA_OFFSET, Period, compute

    today = (datetime.utcnow() + CHINA_OFFSET).date()
    return compute(engine, Period(today - timedelta(days=1), today))


def check_exact(figures: dict) -> None:
    totals = figures["totals"]
    assert totals["conversations"] == 7
    assert totals["user_messages"] == USER_MESSAGES == 18
    assert totals["customers"] == 7
    assert totals["handed_off"] == 2 and totals["handoff_rate"] == round(2 / 7, 4)
    assert {r["reason"]: r["handoffs"] for r in figures["handoff_reasons"]} == {
        "customer_request": 1,
        "two_fallbacks": 1,
    }
    assert totals["bot_settled"] == 5 and totals["bot_settled_share"] == round(5 / 7, 4)
    assert totals["fallbacks"] == 2 and totals["fallback_rate"] == round(2 / 18, 4)
    assert [(g["normalized_text"], g["times"]) for g in figures["not_understood"]] == [("???", 1), ("asdfghjkl", 1)]
    assert totals["claimed_handoffs"] == 0 and totals["median_wait_seconds"] is None
    assert {r["product"]: r["messages"] for r in figures["products"]} == {"小米14": 1}
    intents = {r["intent"]: r["messages"] for r in figures["intents"]}
    assert intents["nlu_fallback"] == 2 and intents["human_handoff"] == 1 and intents["sensitive_info"] == 1
    assert intents["rate_service"] == 2 and sum(intents.values()) == 18
    # Ratings: 5 and 1, two of seven conversations rated.
    assert totals["ratings"] == 2 and totals["csat_average"] == 3.0 and totals["rating_share"] == round(2 / 7, 4)
    assert {r["score"]: r["ratings"] for r in figures["csat_distribution"]} == {1: 1, 2: 0, 3: 0, 4: 0, 5: 1}
    # One return ticket; one return refused by the 7-day rule; two verified look-ups.
    assert [(r["kind"], r["tickets"]) for r in figures["tickets"]] == [("return", 1)]
    assert [(r["kind"], r["reason"], r["tickets"]) for r in figures["ticket_reasons"]] == [("return", "不喜欢", 1)]
    assert [(r["action"], r["times"]) for r in figures["refusals"]] == [("request_return", 1)]
    lookups = {(r["action"], r["outcome"]): r["times"] for r in figures["order_lookups"]}
    assert lookups[("verify_phone_tail", "verified")] == 2
    assert not any(outcome in ("wrong_tail", "locked") for _, outcome in lookups)
    # Every customer message got a reply, timed; by channel all web.
    assert totals["response_p95_seconds"] is not None and totals["response_p95_seconds"] < 30
    assert {r["channel"] for r in figures["conversations_by_bucket"]} == {"web"}
    assert sum(r["user_messages"] for r in figures["busy_hours"]) == 18


def comparable(figures: dict) -> dict:
    """Every figure but the reply times (two bots, two timings)."""
    totals = {k: v for k, v in figures["totals"].items() if not k.startswith("response_")}
    return {**figures, "totals": totals}


def no_leaks(engine) -> None:
    from kefu.analytics import store
    from kefu.testing import sensitive_leaks

    with engine.connect() as db:
        texts = [row.text for row in db.execute(select(store.user_turns.c.text))]
    assert sensitive_leaks("\n".join(texts)) == []


@pytest.fixture(scope="module")
def sql_path(trained_model, tmp_path_factory):
    from kefu.analytics import store
    from kefu.analytics.consumer import SQLBrokerConsumer
    from kefu.testing import running_servers

    url, engine = fresh_shop(tmp_path_factory.mktemp("analytics-e2e"))
    with running_servers(trained_model, url) as servers:
        chat(servers)
        # The broker writes a turn's events just after the turn: wait for the last ones.
        consumer = SQLBrokerConsumer(engine)
        for _ in range(100):
            consumer.drain()
            with engine.connect() as db:
                if db.execute(select(func.count()).select_from(store.user_turns)).scalar() >= USER_MESSAGES:
                    break
            time.sleep(0.1)
        time.sleep(0.5)
        consumer.drain()
    return engine


def test_scripted_conversations_through_the_sql_broker_give_exact_figures(sql_path):
    from kefu.analytics import store
    from kefu.testing import sensitive_leaks

    check_exact(figures_of_today(sql_path))
    no_leaks(sql_path)
    with sql_path.connect() as db:
        raw = [row.data for row in db.execute(select(store.broker_events.c.data))]
    assert sensitive_leaks("\n".join(raw)) == []


async def _queue_length(queue: str) -> int:
    import aio_pika

    from kefu.analytics.rabbitmq import DEFAULT_URL

    connection = await aio_pika.connect(DEFAULT_URL)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def _deliver_one_twice(queue: str) -> None:
    """At-least-once delivery: a copy of the first waiting user event goes
    to the back of the queue, as a redelivery after a lost acknowledgement would."""
    import json

    import aio_pika

    from kefu.analytics.rabbitmq import DEFAULT_URL

    connection = await aio_pika.connect(DEFAULT_URL)
    try:
        channel = await connection.channel()
        waiting = await channel.declare_queue(queue, durable=True, passive=True)
        held = []
        try:
            while True:
                message = await waiting.get(no_ack=False, fail=True, timeout=5)
                assert message is not None  # fail=True: an empty queue raises
                held.append(message)
                if json.loads(message.body).get("event") == "user":
                    await channel.default_exchange.publish(
                        aio_pika.Message(message.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=queue,
                    )
                    return
        finally:
            for message in held:
                await message.nack(requeue=True)
    finally:
        await connection.close()


async def _consume_with_a_restart(engine, queue: str) -> None:
    from kefu.analytics.rabbitmq import RabbitConsumer

    class DiesBeforeAcknowledging(RabbitConsumer):
        async def _acknowledge(self, messages):
            raise ConnectionError("consumer killed after its commit")

    published = await _queue_length(queue)
    dying = DiesBeforeAcknowledging(engine, queue=queue, batch_size=published // 2)
    await dying.connect()
    with pytest.raises(ConnectionError):
        await dying.consume_batch()
    await dying.close()  # half the events committed, never acknowledged: they come back
    assert await _queue_length(queue) == published
    await _deliver_one_twice(queue)
    consumer = RabbitConsumer(engine, queue=queue, batch_size=20)
    await consumer.connect()
    assert await consumer.drain() == published + 1
    await consumer.close()


async def _delete_queue(queue: str) -> None:
    import aio_pika

    from kefu.analytics.rabbitmq import DEFAULT_URL

    connection = await aio_pika.connect(DEFAULT_URL)
    channel = await connection.channel()
    await channel.queue_delete(queue)
    await connection.close()


async def _probe() -> None:
    import aio_pika

    from kefu.analytics.rabbitmq import DEFAULT_URL

    connection = await aio_pika.connect(DEFAULT_URL, timeout=3)
    await connection.close()


def test_the_same_conversations_through_rabbitmq_give_the_same_figures(sql_path, trained_model, tmp_path):
    from kefu.testing import running_servers

    try:
        asyncio.run(_probe())
    except Exception as exc:  # noqa: BLE001 - skip with the reason
        pytest.skip(f"RabbitMQ not reachable: {exc}")
    queue = f"kefu_analytics_e2e_{uuid.uuid4().hex[:8]}"
    url, engine = fresh_shop(tmp_path)
    pika = f"event_broker:\n  type: pika\n  url: 127.0.0.1\n  username: guest\n  password: guest\n  queues: [{queue}]\n"
    try:
        with running_servers(trained_model, url, stores=pika) as servers:
            chat(servers)
            # Rasa publishes from tasks of its own: wait until the queue stops growing.
            last, steady = -1, 0
            for _ in range(100):
                length = asyncio.run(_queue_length(queue))
                steady = steady + 1 if length == last else 0
                if steady >= 5:
                    break
                last = length
                time.sleep(0.1)
        asyncio.run(_consume_with_a_restart(engine, queue))
    finally:
        asyncio.run(_delete_queue(queue))
    figures = figures_of_today(engine)
    check_exact(figures)
    no_leaks(engine)
    assert comparable(figures) == comparable(figures_of_today(sql_path))
