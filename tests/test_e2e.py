"""Whole conversations over the REST channel against the real servers (the
trained model, the action server and a freshly seeded SQLite shop), with
the database checked afterwards."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from sqlalchemy import func, select

from kefu.db.engine import make_engine, session_scope
from kefu.db.models import AftersalesTicket, AuditLog, HandoffRequest, Order, SatisfactionRating
from kefu.shop.demo import seed, showcase, showcase_customer
from kefu.shop.repository import SqlShopRepository
from kefu.shop.tokens import sign_customer_token

pytestmark = [pytest.mark.e2e, pytest.mark.model]
CASES = showcase()
SECRET = "e2e-secret"
WANG_OPENID = showcase_customer("wang").wechat_openid  # in the repository for anyone to read


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'shop.sqlite3'}"
    engine = make_engine(url)
    seed(engine, orders=300)
    return url, engine


@pytest.fixture(scope="module")
def bot(trained_model, shop, tmp_path_factory):
    from kefu.testing import running_servers

    url, _ = shop
    # Every event also goes to an event broker, checked for what it carries.
    broker = tmp_path_factory.mktemp("broker") / "events.sqlite3"
    stores = f"event_broker:\n  type: sql\n  dialect: sqlite\n  db: {broker}\n"
    with running_servers(trained_model, url, extra_env={"KEFU_TOKEN_SECRET": SECRET}, stores=stores) as servers:
        servers.broker_path = broker
        yield servers


class Chat:
    def __init__(self, bot, metadata=None):
        self.bot = bot
        self.sender = f"e2e-{uuid.uuid4().hex[:12]}"
        self.metadata = metadata

    def say(self, text: str) -> str:
        self.last = self.bot.say(self.sender, text, self.metadata)
        return "\n".join(m.get("text", "") for m in self.last)

    def customs(self) -> list[dict]:
        return [m["custom"] for m in self.last if "custom" in m]


def count(engine, *where):
    with session_scope(engine) as session:
        return session.execute(select(func.count()).select_from(where[0]).where(*where[1:])).scalar()


def test_greeting(bot):
    reply = Chat(bot).say("你好")
    assert "您好" in reply or "你好" in reply


def test_product_price_with_card_from_the_database(bot, shop):
    chat = Chat(bot)
    reply = chat.say("小米14多少钱")
    assert "小米14" in reply and "3,999.00" in reply
    assert any(card["type"] == "product_card" and card["name"] == "小米14" for card in chat.customs())
    reply = chat.say("有货吗")  # the product under discussion is remembered
    assert "小米14" in reply


def test_out_of_stock_product_says_when_it_is_back(bot):
    reply = Chat(bot).say("小米13还有货吗")
    assert "缺货" in reply and "补货" in reply


def test_recommendation_within_budget_only_lists_real_products(bot, shop):
    _, engine = shop
    chat = Chat(bot)
    chat.say("推荐一款三千以内的手机")
    cards = chat.customs()
    assert 1 <= len(cards) <= 3
    repository = SqlShopRepository(engine)
    for card in cards:
        product = repository.get_product(card["name"])
        assert product is not None and product.category == "手机" and product.price_cents <= 300000


def test_order_status_needs_the_phone_tail_and_is_audited(bot, shop):
    _, engine = shop
    chat = Chat(bot)
    ask = chat.say("我的订单到哪了")
    assert "订单号" in ask
    ask_tail = chat.say(CASES["shipped"]["order_no"])
    assert "手机" in ask_tail and ("后四位" in ask_tail or "尾号" in ask_tail)
    assert "索尼" not in ask_tail  # nothing about the order before verification
    reply = chat.say(CASES["shipped"]["phone_tail"])
    # "到哪了" asks where the parcel is: the logistics answer, with its latest events.
    assert "运单号" in reply and "最新物流" in reply
    assert count(engine, AuditLog, AuditLog.conversation_id == chat.sender) >= 2


def test_three_wrong_tails_lock_lookups_and_hand_off(bot, shop):
    _, engine = shop
    chat = Chat(bot)
    chat.say("查订单")
    chat.say(CASES["delivered_2d"]["order_no"])
    assert "还可以尝试2次" in chat.say("1111")
    assert "还可以尝试1次" in chat.say("2222")
    locked = chat.say("3333")
    assert "人工" in locked
    assert count(engine, HandoffRequest, HandoffRequest.conversation_id == chat.sender) == 1
    chat.say("查订单")
    assert "AirPods" not in chat.say(CASES["delivered_2d"]["phone_tail"])  # still locked


def test_return_creates_one_ticket_even_if_confirmed_twice(bot, shop):
    _, engine = shop
    chat = Chat(bot)
    chat.say("我要退货")
    chat.say(CASES["delivered_2d"]["order_no"])
    reason_question = chat.say(CASES["delivered_2d"]["phone_tail"])
    assert "原因" in reason_question
    confirm = chat.say("不喜欢")
    assert "确认" in confirm
    done = chat.say("确认")
    ticket_no = re.search(r"AS\d{14}", done)
    assert ticket_no, done
    chat.say("确认")
    assert count(engine, AftersalesTicket, AftersalesTicket.conversation_id == chat.sender) == 1


def test_refused_return_names_the_rule(bot, shop):
    _, engine = shop
    chat = Chat(bot)
    chat.say("这个能退吗")
    chat.say(CASES["delivered_10d"]["order_no"])
    reply = chat.say(CASES["delivered_10d"]["phone_tail"])
    assert "7天" in reply
    assert count(engine, AftersalesTicket, AftersalesTicket.conversation_id == chat.sender) == 0


def test_switch_from_return_to_exchange(bot, shop):
    _, engine = shop
    chat = Chat(bot)
    chat.say("我要退货")
    chat.say(CASES["li_delivered_5d"]["order_no"])
    chat.say(CASES["li_delivered_5d"]["phone_tail"])
    chat.say("还是换货吧")
    chat.say("尺码不合适")
    done = chat.say("确认")
    assert "换货" in done
    with session_scope(engine) as session:
        kinds = (
            session.execute(select(AftersalesTicket.kind).where(AftersalesTicket.conversation_id == chat.sender))
            .scalars()
            .all()
        )
    assert kinds == ["exchange"]


def test_cancel_a_paid_order_refunds_it(bot, shop):
    _, engine = shop
    chat = Chat(bot)
    chat.say("帮我取消订单")
    chat.say(CASES["paid_unshipped"]["order_no"])
    confirm = chat.say(CASES["paid_unshipped"]["phone_tail"])
    assert "退" in confirm
    chat.say("确认")
    assert count(engine, Order, Order.order_no == CASES["paid_unshipped"]["order_no"], Order.status == "refunding") == 1


def test_never_mind_ends_the_request_and_a_digression_resumes_it(bot, shop):
    _, engine = shop
    chat = Chat(bot)
    chat.say("我要退货")
    chat.say(CASES["delivered_2d"]["order_no"])
    faq = chat.say("运费多少")
    assert "包邮" in faq and "后四位" in faq  # answered, then the form asks again
    assert "取消" in chat.say("算了")
    assert count(engine, AftersalesTicket, AftersalesTicket.conversation_id == chat.sender) == 0


def test_signed_token_counts_as_verification(bot, shop):
    _, engine = shop
    wang = SqlShopRepository(engine).find_order(CASES["delivered_2d"]["order_no"]).customer_id
    chat = Chat(bot, metadata={"customer_token": sign_customer_token(wang, secret=SECRET)})
    chat.say("查一下我的订单")
    assert any(CASES["shipped"]["order_no"] in b.get("payload", "") for m in chat.last for b in m.get("buttons", []))
    reply = chat.say(CASES["shipped"]["order_no"])
    assert "索尼WH-1000XM5" in reply  # no phone tail asked
    other = chat.say(f"订单{CASES['li_delivered_5d']['order_no']}什么状态")
    assert "Adidas" not in other  # another customer's order stays hidden


def test_rating_after_something_was_resolved(bot, shop):
    _, engine = shop
    chat = Chat(bot)
    chat.say("iPhone 15多少钱")
    assert "打个分" in chat.say("谢谢")
    chat.say('/rate_service{"score": 5}')
    assert (
        count(
            engine, SatisfactionRating, SatisfactionRating.conversation_id == chat.sender, SatisfactionRating.score == 5
        )
        == 1
    )


def test_free_text_rating(bot, shop):
    _, engine = shop
    chat = Chat(bot)
    chat.say("差评")
    assert (
        count(
            engine, SatisfactionRating, SatisfactionRating.conversation_id == chat.sender, SatisfactionRating.score == 1
        )
        == 1
    )


def test_card_number_is_warned_about_and_stored_masked(bot):
    chat = Chat(bot)
    reply = chat.say("退款退到我的卡6222021234567890128")
    assert "银行卡" in reply
    tracker = bot.get_json(f"/conversations/{chat.sender}/tracker")
    stored = json.dumps(tracker, ensure_ascii=False)
    assert "6222021234567890128" not in stored and "6222***********0128" in stored


def test_handoff_on_request(bot, shop):
    _, engine = shop
    chat = Chat(bot)
    assert "人工" in chat.say("转人工")
    assert count(engine, HandoffRequest, HandoffRequest.conversation_id == chat.sender) == 1


@pytest.mark.parametrize(
    "text", ["啊" * 10000, "😀😀😀", "'; DROP TABLE orders; --", "   ", "<script>alert(1)</script>"]
)
def test_odd_input_gets_an_answer_and_loses_nothing(bot, shop, text):
    _, engine = shop
    before = count(engine, Order)
    reply = Chat(bot).say(text)
    assert reply.strip()
    assert count(engine, Order) == before


def test_tracking_number_and_ship_tail_unlock_that_order_only(bot, shop):
    _, engine = shop
    repository = SqlShopRepository(engine)
    order = repository.find_order(CASES["shipped"]["order_no"])
    chat = Chat(bot)
    asked = chat.say(f"快递单号{order.tracking_no}到哪了")
    assert "后四位" in asked and order.order_no not in asked  # nothing shown before the tail
    assert order.tracking_no in chat.say(CASES["shipped"]["phone_tail"])
    mine = chat.say("我的订单")
    assert CASES["shipped"]["order_no"] in mine  # that order again, without the tail
    listed = {b.get("payload", "") for m in chat.last for b in m.get("buttons", [])}
    assert not any(CASES["delivered_2d"]["order_no"] in p for p in listed)  # no list of the account's orders
    other = chat.say(f"订单{CASES['delivered_2d']['order_no']}什么状态")
    assert "后四位" in other and "AirPods" not in other  # another order of the same customer: its own tail
    assert (
        count(
            engine,
            AuditLog,
            AuditLog.conversation_id == chat.sender,
            AuditLog.action == "find_order_by_tracking_no",
            AuditLog.order_id == order.id,
        )
        == 1
    )


def test_guessing_the_tail_from_many_conversations_locks_the_order(bot, shop):
    _, engine = shop
    case = CASES["cancelled"]
    for _ in range(40):
        chat = Chat(bot)
        chat.say(f"查一下订单{case['order_no']}")
        for guess in ("0000", "1111", "2222"):
            chat.say(guess)
    owner = Chat(bot)
    owner.say(f"查一下订单{case['order_no']}")
    refused = owner.say(case["phone_tail"])
    assert "锁定" in refused and "人工" in refused and "已取消" not in refused
    with session_scope(engine) as s:
        order_id = s.execute(select(Order.id).where(Order.order_no == case["order_no"])).scalar_one()
    assert count(engine, AuditLog, AuditLog.order_id == order_id, AuditLog.action == "lock_order_lookups") >= 1


def order_numbers_shown(chat: Chat) -> list[str]:
    shown = json.dumps(chat.last, ensure_ascii=False)
    return [case["order_no"] for case in CASES.values() if case["order_no"] in shown]


def test_an_openid_a_web_client_writes_into_its_metadata_is_no_identity(bot):
    forged_identity = f"kefuwx1.{WANG_OPENID}.9999999999.{'0' * 64}"
    chat = Chat(bot, metadata={"wechat_openid": WANG_OPENID, "wechat_identity": forged_identity})
    payload = {
        "sender": chat.sender,
        "message": "查一下我的订单",
        "input_channel": "wechat",
        "metadata": {**chat.metadata, "session_token": bot.session_token(chat.sender)},
    }
    chat.last = bot.post_json("/webhooks/rest/webhook", payload)
    assert order_numbers_shown(chat) == []
    reply = chat.say(CASES["shipped"]["order_no"])
    assert "手机" in reply and ("后四位" in reply or "尾号" in reply), reply
    assert "索尼" not in reply and order_numbers_shown(chat) in ([], [CASES["shipped"]["order_no"]])


def test_a_rest_client_cannot_take_a_conversation_it_was_not_given(bot):
    import urllib.error

    def refused(sender, metadata=None, signed=True) -> int:
        with pytest.raises(urllib.error.HTTPError) as error:
            bot.say(sender, "查一下我的订单", metadata, signed=signed)
        return error.value.code

    assert refused(f"wechat-{WANG_OPENID}") == 403  # WeChat's conversations
    assert refused("web-chosen-by-the-client", signed=False) == 403  # no session token
    victim = f"e2e-{uuid.uuid4().hex[:12]}"
    assert refused(victim, {"session_token": bot.session_token("e2e-attacker")}) == 403
    assert bot.say(victim, "你好")  # with its own token the sender is served


def test_disguised_card_and_id_numbers_are_masked_everywhere(bot):
    from kefu.testing import CARD, DISGUISED, sensitive_leaks

    chat = Chat(bot)
    texts = [f"退款退到我的卡{number}" for number in DISGUISED]
    texts.append("啊" * 600 + f"卡号{CARD}")  # past the NLU's cut
    texts.append("我要退货")
    texts.append(f"原因是{'好' * 505}{CARD}")  # cut in two by it
    for text in texts:
        chat.say(text)
    tracker = json.dumps(bot.get_json(f"/conversations/{chat.sender}/tracker"), ensure_ascii=False)
    assert "退款退到我的卡" in tracker
    assert sensitive_leaks(tracker) == []
    for log in bot.workdir.glob("*.log"):
        assert sensitive_leaks(log.read_text(encoding="utf-8", errors="replace")) == [], log.name
    import sqlite3

    with sqlite3.connect(bot.broker_path) as broker:
        published = [
            json.dumps(json.loads(row[0]), ensure_ascii=False)  # unescaped, as a consumer reads it
            for row in broker.execute("SELECT data FROM events WHERE sender_id = ?", (chat.sender,))
        ]
    assert any("退款退到我的卡" in data for data in published)
    assert sensitive_leaks("".join(published)) == []


def test_socketio_takes_only_sessions_it_issued(bot):
    import asyncio

    import socketio

    def user_turns(sender: str) -> int:
        events = bot.get_json(f"/conversations/{sender}/tracker")["events"]
        return sum(1 for event in events if event.get("event") == "user")

    async def exchange(session_id: str, token: str | None, metadata: dict) -> list[dict]:
        client = socketio.AsyncClient()
        answers: list[dict] = []
        client.on("bot_uttered", answers.append)
        await client.connect(bot.rasa_url, socketio_path="/socket.io", transports=["polling"])
        try:
            await client.emit("session_request", {"session_id": session_id, "session_token": token})
            await client.emit("user_uttered", {"message": "你好", "session_id": session_id, "metadata": metadata})
            for _ in range(100):
                if answers:
                    break
                await asyncio.sleep(0.1)
        finally:
            await client.disconnect()
        return answers

    issued, unsigned = (f"e2e-{uuid.uuid4().hex[:12]}" for _ in range(2))
    wechat = f"wechat-{WANG_OPENID}"
    token = bot.session_token(issued)
    assert asyncio.run(exchange(issued, token, {"session_token": token}))
    assert asyncio.run(exchange(unsigned, None, {})) == []
    assert asyncio.run(exchange(wechat, bot.session_token(wechat), {"session_token": bot.session_token(wechat)})) == []
    assert user_turns(issued) == 1
    assert user_turns(unsigned) == 0 and user_turns(wechat) == 0
    # Without the token in its session_request a client is not let into the
    # session's room: it hears nothing, not even of a message sent there.
    assert asyncio.run(exchange(issued, None, {"session_token": token})) == []
