"""Analytics: a fixed set of conversations, published through the SQL event
broker, consumed (restarted halfway, one event delivered twice) and written
by the real writer; every figure checked exactly. Shop records (hand-off
claims, ratings, tickets, the audit log) are rows in the shop tables, as the
actions and the console write them."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from kefu.analytics import store
from kefu.analytics.consumer import SQLBrokerConsumer
from kefu.analytics.figures import Period, compute
from kefu.analytics.scripted import Script, Turn, script_events
from kefu.analytics.writer import normalize_text
from kefu.db.engine import ensure_schema, make_engine, session_scope
from kefu.db.models import AftersalesTicket, AuditLog, HandoffRequest, SatisfactionRating, StaffAccount

D = datetime  # times below are UTC; China time is 8 hours ahead

SCRIPTS = [
    # A, Monday 10:00 China time: settled by the bot
    Script(
        "web-a",
        D(2026, 11, 2, 2, 0),
        [
            Turn("小米14多少钱", "product_price", products=("小米14",), categories=("手机",), reply_after=0.2),
            Turn("有货吗", "product_stock", reply_after=0.4),
            Turn("谢谢", "thank", reply_after=0.2),
        ],
    ),
    # B: two misunderstandings in a row, handed off
    Script(
        "web-b",
        D(2026, 11, 2, 3, 0),
        [
            Turn("asdf", "nlu_fallback", 0.3, reply_after=0.5),
            Turn("？？？", "nlu_fallback", 0.2, reply_after=0.5, handoff_reason="two_fallbacks"),
        ],
    ),
    # C: WeChat, asks for a person
    Script(
        "wechat-abc",
        D(2026, 11, 3, 12, 0),
        [Turn("转人工", "human_handoff", reply_after=0.6, handoff_reason="customer_request")],
        input_channel="wechat",
    ),
    # D: two misunderstandings, not in a row: still the bot's
    Script(
        "web-d",
        D(2026, 11, 4, 1, 0),
        [
            Turn("asdf!", "nlu_fallback", 0.3, reply_after=0.5),
            Turn("我的快递到哪了", "track_shipment", reply_after=1.0),
            Turn("ＡＳＤＦ", "nlu_fallback", 0.3, reply_after=0.5),
        ],
    ),
    # F: 00:30 on Monday 2 November in China, still 1 November in UTC
    Script("web-f", D(2026, 11, 1, 16, 30), [Turn("你好", "greet", reply_after=0.1)]),
    # H: customer A again, a new session on Thursday
    Script(
        "web-a", D(2026, 11, 5, 2, 0), [Turn("推荐手机", "product_recommend", categories=("手机",), reply_after=0.3)]
    ),
    # outside the range: 00:30 on Monday 9 November in China; and October
    Script("web-g", D(2026, 11, 8, 16, 30), [Turn("你好", "greet")]),
    Script("web-o", D(2026, 10, 20, 2, 0), [Turn("转人工", "human_handoff", handoff_reason="customer_request")]),
]
WEEK = Period(date(2026, 11, 2), date(2026, 11, 8))


def all_events() -> list[dict]:
    return [event for script in SCRIPTS for event in script_events(script)]


def shop_records(engine) -> None:
    with session_scope(engine) as s:
        agent = StaffAccount(name="小李", role="agent", password_hash="x", created_at=D(2026, 11, 1))
        s.add(agent)
        s.flush()
        s.add_all(
            [
                HandoffRequest(
                    conversation_id="web-b",
                    reason="two_fallbacks",
                    status="closed",
                    created_at=D(2026, 11, 2, 3, 0, 21),
                    claimed_at=D(2026, 11, 2, 3, 0, 51),
                ),
                HandoffRequest(
                    conversation_id="wechat-abc",
                    reason="customer_request",
                    status="closed",
                    created_at=D(2026, 11, 3, 12, 0, 1),
                    claimed_at=D(2026, 11, 3, 12, 1, 31),
                    claimed_by=agent.id,
                ),
                HandoffRequest(
                    conversation_id="web-x", reason="complaint", status="waiting", created_at=D(2026, 11, 3, 13, 0)
                ),
                SatisfactionRating(conversation_id="web-a", score=5, created_at=D(2026, 11, 2, 2, 1)),
                SatisfactionRating(
                    conversation_id="wechat-abc", score=4, created_at=D(2026, 11, 3, 12, 20), staff_id=agent.id
                ),
                SatisfactionRating(conversation_id="web-d", score=2, created_at=D(2026, 11, 4, 1, 2)),
                SatisfactionRating(conversation_id="web-o", score=1, created_at=D(2026, 10, 20, 2, 5)),
                AftersalesTicket(
                    ticket_no="T1", kind="return", reason="不喜欢", status="approved", created_at=D(2026, 11, 4, 1, 1)
                ),
                AftersalesTicket(
                    ticket_no="T2", kind="complaint", reason="态度差", status="open", created_at=D(2026, 11, 5, 2, 1)
                ),
                AftersalesTicket(
                    ticket_no="T3", kind="return", reason="不喜欢", status="approved", created_at=D(2026, 10, 20, 2, 1)
                ),
                AuditLog(
                    happened_at=D(2026, 11, 4, 1, 0, 30),
                    conversation_id="web-d",
                    action="verify_phone_tail",
                    order_id=1,
                    outcome="wrong_tail",
                ),
                AuditLog(
                    happened_at=D(2026, 11, 4, 1, 0, 40),
                    conversation_id="web-d",
                    action="verify_phone_tail",
                    order_id=1,
                    outcome="verified",
                ),
                AuditLog(
                    happened_at=D(2026, 11, 4, 1, 0, 41),
                    conversation_id="web-d",
                    action="verify_phone_tail",
                    order_id=1,
                    outcome="verified",
                ),
                AuditLog(
                    happened_at=D(2026, 11, 4, 1, 0, 50),
                    conversation_id="web-d",
                    action="lock_order_lookups",
                    order_id=2,
                    outcome="locked",
                ),
                AuditLog(
                    happened_at=D(2026, 11, 4, 1, 1, 0),
                    conversation_id="web-d",
                    action="cancel_order",
                    order_id=1,
                    outcome="refused:already_shipped",
                ),
            ]
        )


@pytest.fixture()
def analytics_db(tmp_path):
    return fill_through_the_broker(f"sqlite:///{tmp_path / 'shop.sqlite3'}")


@pytest.fixture()
def postgres_analytics_db():
    from conftest import _postgres_database

    admin, created, why = _postgres_database()
    if created is None:
        pytest.skip(why)
    name, url = created
    engine = fill_through_the_broker(url)
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def fill_through_the_broker(url: str):
    from kefu.analytics.broker import KefuSQLEventBroker

    engine = make_engine(url)
    ensure_schema(engine)
    shop_records(engine)
    broker = KefuSQLEventBroker(url)
    events = all_events()
    half = len(events) // 2
    for event in events[:half]:
        broker.publish(event)
    # The first consumer reads part of the stream, then stops (a restart).
    first = SQLBrokerConsumer(engine, batch_size=7)
    first.consume_once()
    first.consume_once()
    for event in events[half:]:
        broker.publish(event)
    # At-least-once delivery: a user message and a reply arrive twice.
    duplicate_user = next(e for e in events[half:] if e["event"] == "user")
    duplicate_bot = next(e for e in events[half:] if e["event"] == "bot")
    broker.publish(duplicate_user)
    broker.publish(duplicate_bot)
    SQLBrokerConsumer(engine, batch_size=7).drain()
    broker.engine.dispose()
    return engine


@pytest.mark.postgres
def test_the_same_figures_on_postgresql(postgres_analytics_db):
    test_every_figure_of_a_fixed_week(postgres_analytics_db)
    test_by_week_and_an_empty_range(postgres_analytics_db)


def test_every_figure_of_a_fixed_week(analytics_db):
    figures = compute(analytics_db, WEEK)
    totals = figures["totals"]
    assert totals == {
        "conversations": 6,
        "user_messages": 11,
        "customers": 5,
        "bot_settled": 4,
        "bot_settled_share": 0.6667,
        "handed_off": 2,
        "handoff_rate": 0.3333,
        "median_wait_seconds": 60.0,
        "claimed_handoffs": 2,
        "fallbacks": 4,
        "fallback_rate": 0.3636,
        "ratings": 3,
        "csat_average": 3.67,
        "rating_share": 0.5,
        "response_p50_seconds": 0.5,
        "response_p95_seconds": 1.0,
    }
    assert figures["conversations_by_bucket"] == [
        {
            "bucket": "2026-11-02",
            "channel": "web",
            "conversations": 3,
            "bot_settled": 2,
            "handed_off": 1,
            "user_messages": 6,
            "customers": 3,
            "fallbacks": 2,
        },
        {
            "bucket": "2026-11-03",
            "channel": "wechat",
            "conversations": 1,
            "bot_settled": 0,
            "handed_off": 1,
            "user_messages": 1,
            "customers": 1,
            "fallbacks": 0,
        },
        {
            "bucket": "2026-11-04",
            "channel": "web",
            "conversations": 1,
            "bot_settled": 1,
            "handed_off": 0,
            "user_messages": 3,
            "customers": 1,
            "fallbacks": 2,
        },
        {
            "bucket": "2026-11-05",
            "channel": "web",
            "conversations": 1,
            "bot_settled": 1,
            "handed_off": 0,
            "user_messages": 1,
            "customers": 1,
            "fallbacks": 0,
        },
    ]
    assert figures["handoff_reasons"] == [
        {"reason": "customer_request", "handoffs": 1},
        {"reason": "two_fallbacks", "handoffs": 1},
    ]
    assert [(g["normalized_text"], g["times"], g["customers"]) for g in figures["not_understood"]] == [
        ("asdf", 3, 2),
        ("???", 1, 1),
    ]
    assert {r["intent"]: r["messages"] for r in figures["intents"]} == {
        "nlu_fallback": 4,
        "product_price": 1,
        "product_stock": 1,
        "thank": 1,
        "human_handoff": 1,
        "track_shipment": 1,
        "greet": 1,
        "product_recommend": 1,
    }
    assert figures["products"] == [{"product": "小米14", "messages": 1}]
    assert figures["categories"] == [{"category": "手机", "messages": 2}]
    assert {(r["weekday"], r["hour"]): r["user_messages"] for r in figures["busy_hours"]} == {
        (0, 0): 1,
        (0, 10): 3,
        (0, 11): 2,
        (1, 20): 1,
        (2, 9): 3,
        (3, 10): 1,
    }
    assert figures["order_lookups"] == [
        {"action": "lock_order_lookups", "outcome": "locked", "times": 1},
        {"action": "verify_phone_tail", "outcome": "verified", "times": 2},
        {"action": "verify_phone_tail", "outcome": "wrong_tail", "times": 1},
    ]
    assert figures["tickets"] == [
        {"kind": "complaint", "status": "open", "tickets": 1},
        {"kind": "return", "status": "approved", "tickets": 1},
    ]
    assert figures["refusals"] == [{"action": "cancel_order", "rule": "already_shipped", "times": 1}]
    assert figures["csat_distribution"] == [
        {"score": 1, "ratings": 0},
        {"score": 2, "ratings": 1},
        {"score": 3, "ratings": 0},
        {"score": 4, "ratings": 1},
        {"score": 5, "ratings": 1},
    ]
    assert [(r["agent"], r["ratings"], r["average"]) for r in figures["csat_by_agent"]] == [("小李", 1, 4.0)]


def test_by_week_and_an_empty_range(analytics_db):
    weekly = compute(analytics_db, Period(date(2026, 10, 1), date(2026, 11, 30), by="week"))
    assert [
        (r["bucket"], r["channel"], r["conversations"], r["user_messages"]) for r in weekly["conversations_by_bucket"]
    ] == [
        ("2026-10-19", "web", 1, 1),
        ("2026-11-02", "web", 5, 10),
        ("2026-11-02", "wechat", 1, 1),
        ("2026-11-09", "web", 1, 1),
    ]
    empty = compute(analytics_db, Period(date(2025, 1, 1), date(2025, 1, 31)))
    assert empty["totals"]["conversations"] == 0 and empty["totals"]["bot_settled_share"] is None
    assert empty["totals"]["response_p50_seconds"] is None and empty["totals"]["csat_average"] is None


def test_a_redelivered_event_counts_once_and_a_restart_loses_nothing(analytics_db):
    with analytics_db.connect() as db:
        turns = db.execute(select(func.count()).select_from(store.user_turns)).scalar()
        broker_rows = db.execute(select(func.count()).select_from(store.broker_events)).scalar()
        conversations = db.execute(select(func.count()).select_from(store.conversations)).scalar()
    events = all_events()
    assert broker_rows == len(events) + 2  # the two duplicates are in the broker's table
    assert turns == sum(1 for e in events if e["event"] == "user")
    assert conversations == len(SCRIPTS)
    # A consumer started again finds nothing new.
    consumer = SQLBrokerConsumer(analytics_db)
    assert consumer.drain() == 0 and consumer.position() == broker_rows


def test_not_understood_messages_are_grouped_after_normalisation():
    assert normalize_text("ＡＳＤＦ！") == normalize_text("asdf") == normalize_text(" a s d f ") == "asdf"
    assert normalize_text("？？？") == "???"
    assert normalize_text("x" * 500) == "x" * 200


def test_report_csv_has_every_table(analytics_db):
    from kefu.analytics.report import csv_tables

    figures = compute(analytics_db, WEEK)
    tables = csv_tables(figures)
    assert {
        "totals",
        "conversations_by_bucket",
        "handoff_reasons",
        "not_understood",
        "intents",
        "products",
        "categories",
        "order_lookups",
        "tickets",
        "ticket_reasons",
        "refusals",
        "csat_distribution",
        "csat_by_agent",
        "busy_hours",
    } <= set(tables)
    rows = list(csv.DictReader(io.StringIO(tables["intents"])))
    assert rows[0] == {"intent": "nlu_fallback", "messages": "4"}


def test_broker_publish_failure_is_logged_not_raised(tmp_path, caplog):
    from kefu.analytics.broker import KefuSQLEventBroker

    url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    broker = KefuSQLEventBroker(url)
    with broker.engine.begin() as db:
        db.exec_driver_sql("DROP TABLE analytics_broker_events")
    broker.publish({"sender_id": "s", "event": "user", "timestamp": 1.0})
    assert "not published" in caplog.text


def test_period_is_china_days():
    period = Period(date(2026, 11, 2), date(2026, 11, 2))
    assert period.start_utc == D(2026, 11, 1, 16) and period.end_utc - period.start_utc == timedelta(days=1)


def test_broker_starts_with_the_database_down_and_says_so(caplog):
    from kefu.analytics.broker import KefuSQLEventBroker

    broker = KefuSQLEventBroker("postgresql://postgres@127.0.0.1:9/nobody_listens")
    broker.publish({"sender_id": "s", "event": "user", "timestamp": 1.0})
    assert "not published" in caplog.text and "table not ready" in caplog.text


def test_the_unanswered_question_loop(analytics_db, tmp_path):
    from sqlalchemy.engine import Engine

    from kefu.analytics.review import decide, export_reviewed, unanswered
    from kefu.analytics.writer import AnalyticsWriter

    engine: Engine = analytics_db
    phone_script = Script(
        "web-p",
        D(2026, 11, 6, 2, 0),
        [Turn("在吗", "greet"), Turn("帮我查13812345678的单子", "nlu_fallback", 0.2), Turn("好的", "affirm")],
    )
    with engine.begin() as db:
        AnalyticsWriter(db).write(script_events(phone_script))
    groups = unanswered(engine, WEEK)
    assert [(g["normalized_text"], g["times"]) for g in groups][:2] == [("asdf", 3), ("???", 1)]
    phone_group = next(g for g in groups if "138" in g["example"])
    assert phone_group["example"] == "帮我查138****5678的单子"
    assert [c["text"] for c in phone_group["context"]] == ["在吗", "帮我查138****5678的单子", "好的"]
    with pytest.raises(ValueError):
        decide(engine, "asdf", intent="no_such_intent", ignored=False, staff_id=None)
    decide(engine, phone_group["normalized_text"], intent="order_status", ignored=False, staff_id=None)
    decide(engine, "asdf", intent="out_of_scope", ignored=False, staff_id=None)
    decide(engine, "???", intent=None, ignored=True, staff_id=None)
    assert {(g["normalized_text"], g["intent"], g["ignored"]) for g in unanswered(engine, WEEK)} >= {
        ("asdf", "out_of_scope", False),
        ("???", None, True),
    }
    out = tmp_path / "reviewed.yml"
    assert export_reviewed(engine, out) == 4
    import yaml

    data = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert {item["intent"]: item["examples"] for item in data["nlu"]} == {
        "order_status": "- 帮我查138****5678的单子\n",
        "out_of_scope": "- asdf\n- asdf!\n- ＡＳＤＦ\n",
    }
    assert "13812345678" not in out.read_text(encoding="utf-8")


def test_inside_an_event_loop_a_turns_events_are_written_together(tmp_path):
    import asyncio

    from kefu.analytics.broker import KefuSQLEventBroker

    url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    broker = KefuSQLEventBroker(url)
    events = script_events(SCRIPTS[0])

    async def a_turn() -> int:
        for event in events:
            broker.publish(event)
        pending = len(broker._pending)
        await broker.close()
        return pending

    assert asyncio.run(a_turn()) == len(events)  # nothing written while the turn's code ran
    with broker.engine.connect() as db:
        stored = [row.data for row in db.execute(select(store.broker_events.c.data).order_by(store.broker_events.c.id))]
    import json

    assert [json.loads(text) for text in stored] == events


@pytest.mark.slow  # Rasa's YAML reader: about a second to import
def test_a_not_understood_group_can_become_an_faq_answers_training_data(analytics_db, tmp_path):
    import yaml
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    from kefu.analytics.review import decide, export_reviewed, known_intents

    assert {"faq/shipping_policy", "faq/invoice"} <= known_intents()
    out = tmp_path / "reviewed.yml"
    # Nothing assigned yet: a file Rasa reads (an empty list, not `nlu:` with nothing).
    assert export_reviewed(analytics_db, out) == 0
    assert RasaYAMLReader().read(out).training_examples == []
    with pytest.raises(ValueError):
        decide(analytics_db, "asdf", intent="faq/no_such_answer", ignored=False, staff_id=None)
    decide(analytics_db, "asdf", intent="faq/shipping_policy", ignored=False, staff_id=None)
    assert export_reviewed(analytics_db, out) == 3
    data = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert data["nlu"] == [{"intent": "faq/shipping_policy", "examples": "- asdf\n- asdf!\n- ＡＳＤＦ\n"}]
    # A retrieval intent's examples, as Rasa reads them for the ResponseSelector.
    examples = RasaYAMLReader().read(out).training_examples
    assert {(e.get("intent"), e.get("intent_response_key")) for e in examples} == {("faq", "faq/shipping_policy")}


def test_reply_percentiles_are_the_same_read_along_either_index(analytics_db, monkeypatch):
    import kefu.analytics.figures as figures

    expected = compute(analytics_db, WEEK)["totals"]
    monkeypatch.setattr(figures, "SORT_FEWER_THAN", 0)  # a busy month's path: along the reply-time index
    along = compute(analytics_db, WEEK)["totals"]
    assert (along["response_p50_seconds"], along["response_p95_seconds"]) == (0.5, 1.0)
    assert (expected["response_p50_seconds"], expected["response_p95_seconds"]) == (0.5, 1.0)


@pytest.mark.slow  # two demo months
def test_the_demo_month_is_deterministic(tmp_path):
    from kefu.analytics.demo import generate_demo_month

    day = date(2026, 11, 28)
    month = Period(day - timedelta(days=30), day)
    engine = make_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    ensure_schema(engine)
    generate_demo_month(engine, today=day)
    first = compute(engine, month)
    # Generated again over itself: the previous demo rows are forgotten and
    # the same month comes back, figure for figure (nothing doubled).
    generate_demo_month(engine, today=day)
    assert compute(engine, month) == first
    totals = first["totals"]
    assert totals["conversations"] > 1000 and totals["user_messages"] > 3000
    assert totals["ratings"] > 0 and first["tickets"] and first["order_lookups"]
