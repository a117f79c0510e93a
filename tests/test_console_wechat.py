"""A hand-off of a WeChat customer, end to end: the real Rasa server with the
WeChat channel (signed messages posted to its webhook), the action server,
the console (`python -m kefu.web`) and the shop database, and a recording
fake of WeChat's API (kefu.testing.FakeWeChatAPI) on a loopback port in
place of api.weixin.qq.com. What an agent says must reach the customer
through the customer-service message API, addressed to their openid."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest
import requests
import yaml
from sqlalchemy import select, update

from kefu.testing import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.model]

TOKEN = "console-wechat-token"
APP_ID = "wxconsole00000001"
AGENT, PASSWORD = "小王", "console-pass-2"


@pytest.fixture(scope="module")
def site(trained_model, tmp_path_factory):
    from kefu.console.store import ConsoleStore
    from kefu.db.engine import make_engine
    from kefu.shop.demo import seed
    from kefu.testing import FakeWeChatAPI, running_servers, running_web

    workdir = tmp_path_factory.mktemp("console-wechat")
    url = f"sqlite:///{workdir / 'shop.sqlite3'}"
    engine = make_engine(url)
    seed(engine, orders=40)
    store = ConsoleStore(engine)
    agent = store.add_staff(AGENT, "agent", PASSWORD)
    wechat = FakeWeChatAPI()
    # The project's channels plus WeChat, in plain mode, pointed at the fake.
    # A long passive-reply deadline: the bot's answers come in the HTTP reply,
    # so that everything the fake receives was sent by the console.
    credentials = yaml.safe_load((Path(__file__).resolve().parents[1] / "credentials.yml").read_text()) or {}
    credentials["kefu.channels.wechat.WeChatInput"] = {
        "token": TOKEN,
        "app_id": APP_ID,
        "app_secret": "console-wechat-secret",
        "api_base_url": wechat.base_url,
        "reply_timeout": 60,
    }
    (workdir / "credentials.yml").write_text(yaml.safe_dump(credentials, allow_unicode=True), encoding="utf-8")
    env = {
        "KEFU_SERVICE_HOURS": "0-24",
        "KEFU_TOKEN_SECRET": "console-wechat-secret-key",
        "WECHAT_APP_ID": APP_ID,
        "WECHAT_APP_SECRET": "console-wechat-secret",
        "WECHAT_API_BASE_URL": wechat.base_url,
        "KEFU_HANDOFF_UPDATE_SECONDS": "10",
    }
    try:
        with running_servers(
            trained_model, url, extra_env=env, rasa_args=("--credentials", str(workdir / "credentials.yml"))
        ) as servers:
            with running_web(url, servers.rasa_url, extra_env=env, log=servers.workdir / "web.log") as web:
                yield {
                    "web": web,
                    "servers": servers,
                    "engine": engine,
                    "store": store,
                    "agent_id": agent.id,
                    "wechat": wechat,
                }
    finally:
        wechat.close()


_sequence = iter(range(1, 10**6))


def customer_says(site, openid: str, text: str) -> str:
    """A signed text message from `openid` to the Rasa server's WeChat webhook; the passive reply's text."""
    timestamp, nonce = str(int(time.time())), f"n{next(_sequence)}"
    signature = hashlib.sha1("".join(sorted((TOKEN, timestamp, nonce))).encode()).hexdigest()
    xml = (
        f"<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{text}]]></Content><MsgId>{next(_sequence) + 10**9}</MsgId></xml>"
    )
    reply = requests.post(
        f"{site['servers'].rasa_url}/webhooks/wechat/webhook",
        params={"timestamp": timestamp, "nonce": nonce, "signature": signature},
        data=xml.encode("utf-8"),
        timeout=90,
    )
    assert reply.status_code == 200, reply.text
    if reply.text == "success":
        return ""
    return ElementTree.fromstring(reply.text).findtext("Content") or ""


def login(web: str) -> tuple[requests.Session, str]:
    http = requests.Session()
    found = re.search(r'name="csrf" value="([^"]+)"', http.get(f"{web}/console/login").text)
    assert found
    csrf = found.group(1)
    signed = http.post(
        f"{web}/console/login", data={"name": AGENT, "password": PASSWORD, "csrf": csrf}, allow_redirects=False
    )
    assert signed.status_code == 302 and signed.headers["Location"] == "/console/"
    return http, http.get(f"{web}/console/api/me").json()["csrf"]  # signing in makes the agent available


def queue_item(http: requests.Session, web: str, conversation_id: str) -> dict | None:
    items = http.get(f"{web}/console/api/queue").json()["items"]
    return next((i for i in items if i["conversation_id"] == conversation_id), None)


def test_an_agent_answers_a_wechat_customer_through_the_customer_service_api(site):
    from kefu.db.models import HandoffRequest, SatisfactionRating

    web, servers, wechat = site["web"], site["servers"], site["wechat"]
    openid = "oWeChatLiveCustomer01"
    conversation = f"wechat-{openid}"
    agent, csrf = login(web)

    answer = customer_says(site, openid, "转人工")
    assert "已为您转接人工客服" in answer

    item = wait_until(lambda: queue_item(agent, web, conversation), 20)
    assert item and item["channel"] == "wechat" and item["status"] == "waiting"
    assert item["customer"].startswith("访客") and openid not in item["customer"]
    claimed = agent.post(f"{web}/console/api/handoffs/{item['id']}/claim", headers={"X-CSRF-Token": csrf})
    assert claimed.status_code == 200, claimed.text
    assert servers.get_json(f"/conversations/{conversation}/tracker")["paused"] is True

    # The customer's message reaches the console; the bot stays silent.
    assert customer_says(site, openid, "我的耳机左边没声音") == ""

    def latest_line() -> dict:  # the console reads the conversation from Rasa every second
        return agent.get(f"{web}/console/api/handoffs/{item['id']}").json()["transcript"][-1]

    assert wait_until(lambda: latest_line()["who"] == "customer", 10)
    assert latest_line()["text"] == "我的耳机左边没声音"

    for text in ("您好，我是客服小王，请问是哪一款耳机？", "好的，已为您登记换货。"):
        sent = agent.post(
            f"{web}/console/api/handoffs/{item['id']}/reply", json={"text": text}, headers={"X-CSRF-Token": csrf}
        )
        assert sent.status_code == 200, sent.text
    assert wechat.texts_to(openid) == ["您好，我是客服小王，请问是哪一款耳机？", "好的，已为您登记换货。"]
    assert wechat.refused == []

    back = agent.post(f"{web}/console/api/handoffs/{item['id']}/handback", headers={"X-CSRF-Token": csrf})
    assert back.status_code == 200, back.text
    handback = wechat.texts_to(openid)[-1]
    assert "感谢您的耐心" in handback and "打个分" in handback and "非常满意" in handback
    assert servers.get_json(f"/conversations/{conversation}/tracker")["paused"] is False

    # The customer answers the rating in words; the rating names the agent.
    customer_says(site, openid, "五星")
    with site["engine"].connect() as conn:
        assert conn.execute(select(HandoffRequest.status).where(HandoffRequest.id == item["id"])).scalar() == "closed"
        ratings = conn.execute(
            select(SatisfactionRating.score, SatisfactionRating.staff_id).where(
                SatisfactionRating.conversation_id == conversation
            )
        ).all()
    assert [tuple(r) for r in ratings] == [(5, site["agent_id"])]


def test_a_left_message_from_wechat_is_answered_by_wechat_message_and_closed(site):
    from kefu.db.models import ConversationMessage, HandoffRequest

    web, servers, wechat, engine = site["web"], site["servers"], site["wechat"], site["engine"]
    openid = "oWeChatLeftMessage01"
    conversation = f"wechat-{openid}"
    site["store"].mark_away(site["agent_id"])  # nobody has the console open

    assert "您可以直接留言" in customer_says(site, openid, "转人工")
    assert customer_says(site, openid, "明天上午请打电话给我，138开头那个号码") == ""  # paused: no bot answer
    assert servers.get_json(f"/conversations/{conversation}/tracker")["paused"] is True

    def kept() -> list[str]:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    select(ConversationMessage.text).where(
                        ConversationMessage.conversation_id == conversation, ConversationMessage.sender == "customer"
                    )
                ).scalars()
            )

    assert wait_until(kept, 20) == ["明天上午请打电话给我，138开头那个号码"]

    agent, csrf = login(web)  # later, an agent comes in and takes the task
    item = queue_item(agent, web, conversation)
    assert item and item["left_message"] is True and item["channel"] == "wechat"
    assert agent.get(f"{web}/console/api/handoffs/{item['id']}").json()["left_messages"] == [
        "明天上午请打电话给我，138开头那个号码"
    ]
    assert agent.post(f"{web}/console/api/handoffs/{item['id']}/claim", headers={"X-CSRF-Token": csrf}).ok
    answer = "您好，已收到您的留言，明天上午十点给您回电。"
    assert agent.post(
        f"{web}/console/api/handoffs/{item['id']}/reply", json={"text": answer}, headers={"X-CSRF-Token": csrf}
    ).ok
    assert wechat.texts_to(openid) == [answer]
    assert agent.post(f"{web}/console/api/handoffs/{item['id']}/handback", headers={"X-CSRF-Token": csrf}).ok
    with engine.connect() as conn:
        assert conn.execute(select(HandoffRequest.status).where(HandoffRequest.id == item["id"])).scalar() == "closed"
    assert queue_item(agent, web, conversation) is None


def test_an_unclaimed_wechat_handoff_gets_one_update_by_wechat_message(site):
    from kefu.db.engine import session_scope, utcnow
    from kefu.db.models import HandoffRequest

    web, wechat, engine = site["web"], site["wechat"], site["engine"]
    openid = "oWeChatWaiting0001"
    login(web)  # an agent is there, so the customer queues
    assert "已为您转接人工客服" in customer_says(site, openid, "转人工")
    with session_scope(engine) as s:  # as if it had waited for long
        s.execute(
            update(HandoffRequest)
            .where(HandoffRequest.conversation_id == f"wechat-{openid}")
            .values(created_at=utcnow().replace(year=2020))
        )
    assert wait_until(lambda: wechat.texts_to(openid), 20)
    time.sleep(2.5)  # a few more rounds of the console's watcher
    texts = wechat.texts_to(openid)
    assert len(texts) == 1 and "让您久等了" in texts[0]
