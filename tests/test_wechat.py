"""The WeChat Official Account channel, with messages built and signed the
way WeChat does, in plain and AES safe mode. A stand-in bot replaces the
Rasa agent so that timing (the 5-second deadline) is under the test's control."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from kefu.channels.wechat import HOLDING_REPLY, WeChatInput
from kefu.channels.wechat_state import DatabaseStateStore
from kefu.shop.tokens import verify_wechat_identity

TOKEN = "kefutoken"
APP_ID = "wx1234567890abcdef"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues them


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def text_xml(content: str, msg_id: str = "1001", openid: str = "oUser123") -> str:
    return (
        f"<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


def event_xml(event: str, openid: str = "oUser123") -> str:
    return (
        f"<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event></xml>"
    )


class FakeBot:
    """Answers like the Rasa agent would, after `delay` seconds."""

    def __init__(self, delay: float = 0.0, failures: int = 0):
        self.delay = delay
        self.failures = failures  # the first this many messages fail, as a broken bot would
        self.received: list[UserMessage] = []

    async def __call__(self, message: UserMessage) -> None:
        self.received.append(message)
        await asyncio.sleep(self.delay)
        if len(self.received) <= self.failures:
            raise RuntimeError("the bot failed")
        await message.output_channel.send_text_message(message.sender_id, f"收到：{message.text}")


class FakeCustomerService:
    def __init__(self):
        self.sent: list[tuple[str, str]] = []

    async def send_text(self, openid: str, text: str) -> None:
        self.sent.append((openid, text))


class Server:
    """Several configurations of the channel, each under its own prefix, in
    one real Sanic server on a loopback port, run in a thread for the
    module (Sanic 21 cannot start a second app in one process)."""

    def __init__(self, channels: dict[str, tuple[WeChatInput, FakeBot]]):
        from kefu.testing import free_port

        self.app = Sanic("wechat_channel_tests")
        for prefix, (channel, bot) in channels.items():
            blueprint = channel.blueprint(bot)
            blueprint.name = f"wechat_{prefix}"
            self.app.blueprint(blueprint, url_prefix=f"/{prefix}/webhooks/wechat")
        self.port = free_port()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await self.app.create_server(host="127.0.0.1", port=self.port, return_asyncio_server=True)
        assert server is not None
        await server.startup()
        self._ready.set()
        await self._stop.wait()
        server.close()
        await server.wait_closed()

    def start(self) -> Server:
        self._thread.start()
        assert self._ready.wait(20), "the test server did not start"
        return self

    def stop(self) -> None:
        assert self._stop is not None, "stop() before start()"
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def request(self, prefix: str, method: str, params: dict, body: str | None = None) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}/{prefix}/webhooks/wechat/webhook?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, data=body.encode("utf-8") if body is not None else None, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as res:
                return res.status, res.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8")


PLAIN_BOT, SLOW_BOT, SAFE_BOT = FakeBot(), FakeBot(delay=0.6), FakeBot()
# Two workers sharing one database, and one started after them (a restart).
WORKER_BOTS = {name: FakeBot() for name in ("worker1", "worker2", "restarted")}
FAILING_BOT = FakeBot(failures=1)
API = FakeCustomerService()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from kefu.db.engine import make_engine

    shared = f"sqlite:///{tmp_path_factory.mktemp('wechat') / 'state.sqlite3'}"
    workers = {
        name: (WeChatInput(TOKEN, state=DatabaseStateStore(make_engine(shared))), bot)
        for name, bot in WORKER_BOTS.items()
    }
    running = Server(
        {
            "plain": (WeChatInput(TOKEN), PLAIN_BOT),
            "slow": (WeChatInput(TOKEN, reply_timeout=0.2, client=API), SLOW_BOT),
            "safe": (WeChatInput(TOKEN, app_id=APP_ID, encoding_aes_key=AES_KEY), SAFE_BOT),
            "failing": (WeChatInput(TOKEN), FAILING_BOT),
            **workers,
        }
    ).start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def fresh_bots():
    for bot in (PLAIN_BOT, SLOW_BOT, SAFE_BOT, FAILING_BOT, *WORKER_BOTS.values()):
        bot.received.clear()
    API.sent.clear()


_ids = iter(range(10**6, 10**7))


def msg_id() -> str:
    return str(next(_ids))


_nonces = iter(range(10**6, 10**7))


def query(age: float = 0, **extra) -> dict:
    timestamp, nonce = str(int(time.time() - age)), f"nonce{next(_nonces)}"
    return {"timestamp": timestamp, "nonce": nonce, "signature": sign(TOKEN, timestamp, nonce), **extra}


def test_server_verification_echoes_only_with_a_valid_signature(server):
    assert server.request("plain", "GET", query(echostr="hello123")) == (200, "hello123")
    bad = dict(query(echostr="hello123"), signature="0" * 40)
    assert server.request("plain", "GET", bad)[0] == 403


def test_plain_text_message_is_answered_passively_with_the_signed_openid_in_metadata(server, monkeypatch):
    monkeypatch.setenv("KEFU_TOKEN_SECRET", "wechat-test-secret")
    status, text = server.request("plain", "POST", query(), text_xml("小米14多少钱", msg_id()))
    assert status == 200 and "收到：小米14多少钱" in text and "<ToUserName><![CDATA[oUser123]]>" in text
    metadata = PLAIN_BOT.received[0].metadata
    assert metadata["wechat_openid"] == "oUser123"
    assert verify_wechat_identity(metadata["wechat_identity"]) == "oUser123"
    assert PLAIN_BOT.received[0].sender_id == "wechat-oUser123"


@pytest.mark.parametrize("params", [{}, {"signature": "x", "timestamp": "1", "nonce": "2"}])
def test_forged_or_missing_signature_is_refused_and_nothing_processed(server, params):
    assert server.request("plain", "POST", params, text_xml("你好", msg_id()))[0] == 403
    assert PLAIN_BOT.received == []


def test_retries_of_the_same_message_are_processed_once(server):
    same = msg_id()
    for _ in range(3):
        assert server.request("plain", "POST", query(), text_xml("查订单", same))[0] == 200
    assert [m.text for m in PLAIN_BOT.received] == ["查订单"]


def test_subscribe_greets_and_unsubscribe_is_silent(server):
    _, greeting = server.request("plain", "POST", query(), event_xml("subscribe", openid="oNew1"))
    assert "收到：/greet" in greeting
    assert server.request("plain", "POST", query(), event_xml("unsubscribe", openid="oNew1"))[1] == "success"
    assert [m.text for m in PLAIN_BOT.received] == ["/greet"]


def test_slow_answer_gets_a_holding_reply_then_the_customer_service_api(server):
    started = time.monotonic()
    _, text = server.request("slow", "POST", query(), text_xml("我的快递到哪了", msg_id()))
    assert HOLDING_REPLY in text and time.monotonic() - started < 0.55
    for _ in range(40):
        if API.sent:
            break
        time.sleep(0.05)
    assert API.sent == [("oUser123", "收到：我的快递到哪了")]


def test_safe_mode_decrypts_and_encrypts(server):
    from wechatpy.crypto import WeChatCrypto

    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    timestamp, nonce = str(int(time.time())), "nonce99"
    encrypted = crypto.encrypt_message(text_xml("退货", msg_id()), nonce, timestamp)
    signature_of = lambda xml: re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]>", xml).group(1)  # noqa: E731
    params = {
        "timestamp": timestamp,
        "nonce": nonce,
        "signature": sign(TOKEN, timestamp, nonce),
        "msg_signature": signature_of(encrypted),
        "encrypt_type": "aes",
    }
    status, text = server.request("safe", "POST", params, encrypted)
    assert status == 200 and "<Encrypt>" in text and "退货" not in text
    reply = crypto.decrypt_message(
        text,
        signature_of(text),
        re.search(r"<TimeStamp>(.*?)</TimeStamp>", text).group(1),
        re.search(r"<Nonce><!\[CDATA\[(.*?)\]\]>", text).group(1),
    )
    assert "收到：退货" in reply
    forged = crypto.encrypt_message(text_xml("退货", msg_id()), nonce, timestamp)
    assert server.request("safe", "POST", dict(params, msg_signature="0" * 40), forged)[0] == 403
    assert [m.text for m in SAFE_BOT.received] == ["退货"]


def test_oversized_bodies_are_refused(server):
    assert server.request("plain", "POST", query(), text_xml("啊" * 40000, msg_id()))[0] == 413
    assert PLAIN_BOT.received == []


def test_a_stale_or_future_timestamp_is_refused(server):
    assert server.request("plain", "POST", query(age=301), text_xml("你好", msg_id()))[0] == 403
    assert server.request("plain", "POST", query(age=-301), text_xml("你好", msg_id()))[0] == 403
    assert server.request("plain", "GET", query(age=400, echostr="x"))[0] == 403
    assert PLAIN_BOT.received == []
    assert server.request("plain", "POST", query(age=200), text_xml("你好", msg_id()))[0] == 200


def test_a_signed_query_replayed_with_another_body_is_refused(server):
    signed = query()
    assert server.request("plain", "POST", signed, text_xml("查订单", msg_id()))[0] == 200
    forged = text_xml("帮我取消订单", msg_id(), openid="oVictim")
    assert server.request("plain", "POST", signed, forged)[0] == 403
    assert [m.text for m in PLAIN_BOT.received] == ["查订单"]


def test_one_message_to_two_workers_and_after_a_restart_is_processed_once(server):
    same = msg_id()
    for worker in ("worker1", "worker2", "restarted"):
        assert server.request(worker, "POST", query(), text_xml("查订单", same))[0] == 200
    assert sum(len(bot.received) for bot in WORKER_BOTS.values()) == 1


def test_the_retry_of_a_failed_message_is_answered(server):
    same = msg_id()
    assert server.request("failing", "POST", query(), text_xml("查订单", same))[0] == 500
    status, text = server.request("failing", "POST", query(), text_xml("查订单", same))
    assert status == 200 and "收到：查订单" in text
    assert server.request("failing", "POST", query(), text_xml("查订单", same)) == (200, "success")
    assert len(FAILING_BOT.received) == 2


def test_reply_text_cannot_break_out_of_its_cdata(server):
    import xml.etree.ElementTree as ElementTree

    from kefu.channels.wechat import escape_cdata

    sneaky = "a]]><MsgType>x</MsgType>"
    status, text = server.request("plain", "POST", query(), text_xml(escape_cdata(sneaky), msg_id()))
    assert status == 200
    reply = ElementTree.fromstring(text)
    assert reply.findtext("Content") == "收到：" + sneaky and reply.findtext("MsgType") == "text"


def test_the_access_token_is_shared_through_the_state_store(tmp_path):
    from kefu.channels.wechat_state import AccessTokenStorage
    from kefu.db.engine import make_engine

    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    first = AccessTokenStorage(DatabaseStateStore(make_engine(url)))
    first.set("wx_access_token", "TOKEN-1", ttl=7200)
    again = AccessTokenStorage(DatabaseStateStore(make_engine(url)))  # another worker, or after a restart
    assert again.get("wx_access_token") == "TOKEN-1"
    again.set("short", "x", ttl=-1)
    assert again.get("short") is None


def test_expired_state_rows_are_purged(tmp_path):
    from sqlalchemy import func, select

    from kefu.db.engine import make_engine, session_scope

    store = DatabaseStateStore(make_engine(f"sqlite:///{tmp_path / 'state.sqlite3'}"))
    for index in range(5):
        assert store.claim(f"nonce:{index}", "x", -1)  # already expired
    store._purged_at = 0.0  # a minute later
    assert store.claim("msg:1", "processing", 60)
    with session_scope(store._engine) as session:
        assert session.execute(select(func.count()).select_from(store._table)).scalar() == 1


def test_customer_service_messages_go_to_the_configured_api_with_one_shared_token(tmp_path, monkeypatch):
    """The channel's workers and the console's web server send through the
    customer-service API with one access token (a second fetch would
    invalidate the first), at the configured address."""
    from kefu.channels.wechat import CustomerServiceClient
    from kefu.channels.wechat_state import AccessTokenStorage
    from kefu.db.engine import make_engine
    from kefu.testing import FakeWeChatAPI

    api = FakeWeChatAPI()
    try:
        url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
        channel = CustomerServiceClient(
            APP_ID, "secret", session=AccessTokenStorage(DatabaseStateStore(make_engine(url))), base_url=api.base_url
        )
        monkeypatch.setenv("WECHAT_API_BASE_URL", api.base_url)  # the console's way of being told
        console = CustomerServiceClient(
            APP_ID, "secret", session=AccessTokenStorage(DatabaseStateStore(make_engine(url)))
        )
        asyncio.run(channel.send_text("oUser123", "您好"))
        asyncio.run(console.send_text("oUser456", "人工客服：您好，请问有什么可以帮您？"))
        assert api.tokens_issued == ["fake-token-1"]
        assert api.sent == [
            {"touser": "oUser123", "msgtype": "text", "text": {"content": "您好"}},
            {"touser": "oUser456", "msgtype": "text", "text": {"content": "人工客服：您好，请问有什么可以帮您？"}},
        ]
    finally:
        api.close()


def test_the_console_sends_to_wechat_customers_through_the_api_and_to_web_customers_by_push(tmp_path, monkeypatch):
    from kefu.testing import FakeWeChatAPI
    from kefu.web import Customers, DeliveryFailed, Hub

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'shop.sqlite3'}")  # where the access token is kept
    for name in ("WECHAT_APP_ID", "WECHAT_APP_SECRET"):
        monkeypatch.delenv(name, raising=False)
    hub = Hub()
    with pytest.raises(DeliveryFailed):  # not configured: the agent is told, nothing is lost silently
        asyncio.run(Customers(hub).deliver("wechat-oUser789", [{"text": "您好"}]))
    api = FakeWeChatAPI()
    try:
        monkeypatch.setenv("WECHAT_APP_ID", APP_ID)
        monkeypatch.setenv("WECHAT_APP_SECRET", "secret")
        monkeypatch.setenv("WECHAT_API_BASE_URL", api.base_url)
        customers = Customers(hub)
        rating = [{"text": "请打分", "buttons": [{"title": "非常满意", "payload": "/rate_service"}]}]
        asyncio.run(customers.deliver("wechat-oUser789", rating))
        assert api.texts_to("oUser789") == ["请打分\n1. 非常满意"]
        page = hub.subscribe("chat:web-abc")
        asyncio.run(customers.deliver("web-abc", [{"text": "您好"}], agent="小李", message_id=7))
        assert page.get_nowait() == {"type": "bot", "agent": "小李", "messages": [{"text": "您好"}], "id": 7}
        assert api.texts_to("web-abc") == [] and len(api.sent) == 1
    finally:
        api.close()
