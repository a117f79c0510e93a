"""A deterministic demo month for the dashboard: scripted customer
conversations replayed as the events Rasa's tracker store publishes, through
the real analytics writer (no final figure is written), plus the shop
records the actions and the console would have written for them (hand-off
claims, ratings, tickets, order look-up audit rows).

Same seed, same conversations; days are relative to today (China time),
like the demo shop. Conversation ids start with ``demo-``.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.engine import Engine

from kefu.analytics import store
from kefu.analytics.figures import CHINA_OFFSET
from kefu.analytics.scripted import Script, Turn, script_events
from kefu.analytics.writer import AnalyticsWriter
from kefu.db.engine import session_scope
from kefu.db.models import AftersalesTicket, AuditLog, HandoffRequest, Product, SatisfactionRating, StaffAccount

DEMO_SEED = 20261128
FALLBACK_TEXTS = [
    "那个东西怎么弄",
    "你们这靠谱吗",
    "asdf",
    "嗯嗯嗯那个",
    "我想问一下那个",
    "？？？",
    "能不能便宜点给个内部价",
    "你们老板在吗",
    "怎么开发票抬头写错了改",
    "发个红包呗",
]
FALLBACK_PRODUCTS = [
    ("小米14", "手机"),
    ("iPhone 15", "手机"),
    ("华为Mate 60", "手机"),
    ("AirPods Pro", "耳机"),
    ("联想小新Pro 14", "电脑"),
    ("优衣库圆领T恤", "服装"),
    ("耐克Air Max 270", "鞋靴"),
]
# Hour weights (China time): quiet at night, peaks late morning and evening.
HOUR_WEIGHTS = [1, 1, 0, 0, 0, 0, 1, 2, 4, 6, 9, 10, 7, 6, 7, 7, 6, 5, 5, 7, 10, 11, 8, 4]


def _catalogue(engine: Engine) -> list[tuple[str, str]]:
    with session_scope(engine) as s:
        rows = s.execute(select(Product.name, Product.category).order_by(Product.id).limit(60)).all()
    return [(r.name, r.category) for r in rows] or FALLBACK_PRODUCTS


def _script(rng: random.Random, sender: str, start: datetime, catalogue: list[tuple[str, str]]) -> tuple[Script, str]:
    """A conversation and its kind (what shop records go with it)."""
    product, category = rng.choice(catalogue)
    fast = lambda: round(rng.uniform(0.12, 0.6), 3)  # noqa: E731 - a one-line draw
    kind = rng.choices(
        ["product", "recommend", "track", "return", "faq", "handoff", "fallback2", "fallback1", "complaint", "chat"],
        weights=[22, 10, 16, 8, 12, 7, 5, 8, 3, 9],
    )[0]
    turns: list[Turn] = [Turn("你好", "greet", reply_after=fast())] if rng.random() < 0.4 else []
    if kind == "product":
        turns += [
            Turn(f"{product}多少钱", "product_price", products=(product,), categories=(category,), reply_after=fast()),
            Turn("有货吗", "product_stock", products=(product,), reply_after=fast()),
        ]
    elif kind == "recommend":
        turns += [
            Turn(f"推荐一款{category}", "product_recommend", categories=(category,), reply_after=fast()),
            Turn(f"{product}怎么样", "product_spec", products=(product,), categories=(category,), reply_after=fast()),
        ]
    elif kind == "track":
        turns += [
            Turn("我的快递到哪了", "track_shipment", reply_after=fast()),
            Turn("2026000000000008", "inform", reply_after=fast()),
            Turn("8000", "inform", reply_after=round(rng.uniform(0.3, 1.2), 3)),
        ]
    elif kind == "return":
        turns += [
            Turn("我要退货", "request_return", reply_after=fast()),
            Turn("2026000000000001", "inform", reply_after=fast()),
            Turn("8000", "inform", reply_after=fast()),
            Turn("不喜欢", "inform", reply_after=fast()),
            Turn("确认", "affirm", reply_after=round(rng.uniform(0.3, 1.5), 3)),
        ]
    elif kind == "faq":
        turns += [
            Turn(rng.choice(["运费多少", "怎么开发票", "支持花呗吗", "七天无理由怎么退"]), "faq", reply_after=fast())
        ]
    elif kind == "handoff":
        turns += [
            Turn(
                rng.choice(["转人工", "我要找人工客服", "人工"]),
                "human_handoff",
                reply_after=fast(),
                handoff_reason="customer_request",
            )
        ]
    elif kind == "fallback2":
        first, second = rng.sample(FALLBACK_TEXTS, 2)
        turns += [
            Turn(first, "nlu_fallback", 0.3, reply_after=fast()),
            Turn(second, "nlu_fallback", 0.25, reply_after=fast(), handoff_reason="two_fallbacks"),
        ]
    elif kind == "fallback1":
        turns += [
            Turn(rng.choice(FALLBACK_TEXTS), "nlu_fallback", 0.3, reply_after=fast()),
            Turn(f"{product}多少钱", "product_price", products=(product,), categories=(category,), reply_after=fast()),
        ]
    elif kind == "complaint":
        turns += [Turn("我要投诉，发错货了", "complaint", reply_after=fast(), handoff_reason="complaint")]
    else:
        turns += [Turn("你是机器人吗", "bot_challenge", reply_after=fast())]
    if rng.random() < 0.5:
        turns.append(Turn("谢谢", "thank", reply_after=fast()))
    channel = "wechat" if sender.startswith("wechat-") else "rest"
    return Script(sender, start, turns, gap_seconds=rng.uniform(8, 40), input_channel=channel), kind


def _is_demo(column):  # noqa: ANN001 - a column of any of the tables
    return or_(column.like("demo-%"), column.like("wechat-demo%"))


def _forget_demo(engine: Engine) -> None:
    """Remove an earlier demo month (its days have moved on since)."""
    with engine.begin() as db:
        demo_conversations = select(store.conversations.c.id).where(_is_demo(store.conversations.c.sender_id))
        db.execute(delete(store.user_turns).where(store.user_turns.c.conversation_id.in_(demo_conversations)))
        db.execute(delete(store.handoffs).where(store.handoffs.c.conversation_id.in_(demo_conversations)))
        db.execute(delete(store.conversations).where(_is_demo(store.conversations.c.sender_id)))
    with session_scope(engine) as s:
        for model in (HandoffRequest, SatisfactionRating, AuditLog):
            s.execute(delete(model).where(_is_demo(model.conversation_id)).execution_options(synchronize_session=False))
        s.execute(
            delete(AftersalesTicket)
            .where(AftersalesTicket.request_key.like("demo-%"))
            .execution_options(synchronize_session=False)
        )


def generate_demo_month(
    engine: Engine, *, days: int = 30, today: date | None = None, if_empty: bool = False, seed: int = DEMO_SEED
) -> str:
    store.ensure_tables(engine)
    with engine.connect() as db:
        existing = db.execute(select(func.count()).select_from(store.conversations)).scalar() or 0
    if if_empty and existing:
        return f"analytics store already has {existing} conversations; demo month not generated"
    _forget_demo(engine)
    rng = random.Random(seed)
    today = today or (datetime.utcnow() + CHINA_OFFSET).date()
    catalogue = _catalogue(engine)
    with session_scope(engine) as s:
        staff_ids = [row[0] for row in s.execute(select(StaffAccount.id).order_by(StaffAccount.id))]
    customers = [f"demo-web-{i:04d}" for i in range(400)] + [f"wechat-demo{i:04d}" for i in range(150)]
    scripts: list[tuple[Script, str]] = []
    for day_index in range(days, 0, -1):
        day = today - timedelta(days=day_index)
        weekend = day.weekday() >= 5
        for _ in range(rng.randint(55, 80) if weekend else rng.randint(35, 60)):
            hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
            local = datetime.combine(day, datetime.min.time()) + timedelta(
                hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60)
            )
            sender = rng.choice(customers)
            scripts.append(_script(rng, sender, local - CHINA_OFFSET, catalogue))
    with engine.begin() as connection:
        writer = AnalyticsWriter(connection)
        for script, _kind in scripts:
            writer.write(script_events(script))
    records = []
    for index, (script, kind) in enumerate(scripts):
        end = script.started_at + timedelta(seconds=script.gap_seconds * len(script.turns))
        handoff_turn = next((t for t in script.turns if t.handoff_reason), None)
        staff_id = None
        if handoff_turn is not None:
            created = script.started_at + timedelta(seconds=script.gap_seconds * script.turns.index(handoff_turn) + 1)
            claimed = rng.random() < 0.85
            staff_id = rng.choice(staff_ids) if staff_ids and claimed else None
            records.append(
                HandoffRequest(
                    conversation_id=script.sender_id,
                    reason=handoff_turn.handoff_reason,
                    status="closed",
                    created_at=created,
                    claimed_at=created + timedelta(seconds=rng.randint(15, 420)) if claimed else None,
                    claimed_by=staff_id,
                    closed_at=end + timedelta(minutes=5),
                )
            )
        if rng.random() < 0.35:
            score = rng.choices(
                [1, 2, 3, 4, 5], weights=[3, 4, 10, 30, 53] if handoff_turn is None else [8, 10, 17, 30, 35]
            )[0]
            records.append(
                SatisfactionRating(
                    conversation_id=script.sender_id,
                    score=score,
                    created_at=end + timedelta(seconds=30),
                    staff_id=staff_id,
                )
            )
        if kind in ("track", "return"):
            wrong = rng.random() < 0.15
            records.append(
                AuditLog(
                    happened_at=end - timedelta(seconds=10),
                    conversation_id=script.sender_id,
                    action="find_order",
                    order_id=None,
                    outcome="found",
                )
            )
            records.append(
                AuditLog(
                    happened_at=end - timedelta(seconds=5),
                    conversation_id=script.sender_id,
                    action="verify_phone_tail",
                    order_id=None,
                    outcome="wrong_tail" if wrong else "verified",  # Verification values (kefu.shop.service)
                )
            )
        if kind == "return":
            allowed = rng.random() < 0.7
            if allowed:
                records.append(
                    AftersalesTicket(
                        ticket_no=f"DEMO{index:06d}",
                        kind="return",
                        reason=rng.choice(["不喜欢", "质量问题", "尺码不合适"]),
                        status=rng.choice(["approved", "closed", "open"]),
                        created_at=end,
                        conversation_id=script.sender_id,
                        request_key=f"demo-{index}",
                    )
                )
            else:
                records.append(
                    AuditLog(
                        happened_at=end,
                        conversation_id=script.sender_id,
                        action="request_return",
                        order_id=None,
                        outcome=rng.choice(["refused:return_window_passed", "refused:not_returnable"]),
                    )
                )
        if kind == "complaint":
            records.append(
                AftersalesTicket(
                    ticket_no=f"DEMO{index:06d}",
                    kind="complaint",
                    reason="发错货",
                    status=rng.choice(["open", "in_progress", "closed"]),
                    created_at=end,
                    conversation_id=script.sender_id,
                    request_key=f"demo-{index}",
                )
            )
    with session_scope(engine) as s:
        s.add_all(records)
    turns = sum(len(script.turns) for script, _ in scripts)
    return f"demo month: {len(scripts)} conversations, {turns} customer messages over {days} days before {today}"
