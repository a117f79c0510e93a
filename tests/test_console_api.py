"""The agent console's HTTP API against a real `python -m kefu.web` process
and a real shop database, with a stand-in for Rasa's HTTP API that records
what the console sends it (the real-Rasa flow is tests/test_console_browser.py)."""

from __future__ import annotations

import json
import re
import shutil
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import requests
from sqlalchemy import select

from kefu.console.store import ConsoleStore
from kefu.db.engine import make_engine, session_scope
from kefu.db.models import AuditLog, HandoffRequest
from kefu.shop.demo import seed
from kefu.shop.repository import SqlShopRepository
from kefu.shop.tokens import sign_session_token
from kefu.testing import JsonHandler, running_web, wait_until

# Each module run starts kefu.web in its own process: the slow tier.
pytestmark = pytest.mark.slow

PASSWORD = "correct horse 1"
WEB_SECRET = "console-test-secret"
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class FakeRasa:
    """Rasa's /conversations API, in memory: trackers and the events posted."""

    def __init__(self) -> None:
        self.trackers: dict[str, dict] = {}
        self.posted: list[tuple[str, object]] = []
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = urlparse(self.path).path
                if path == "/":
                    return self.reply_json("ok")
                conversation = unquote(path.split("/")[2])
                self.reply_json(fake.tracker(conversation))

            def do_POST(self) -> None:  # noqa: N802
                path = urlparse(self.path).path
                conversation = unquote(path.split("/")[2])
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
                fake.posted.append((path, body))
                tracker = fake.tracker(conversation)
                if path.endswith("/tracker/events"):
                    for event in body if isinstance(body, list) else [body]:
                        if event["event"] in ("pause", "resume"):
                            tracker["paused"] = event["event"] == "pause"
                        tracker["events"].append(event)
                    return self.reply_json(tracker)
                if path.endswith("/execute"):
                    return self.reply_json({"tracker": tracker, "messages": [{"text": f"[{body['name']}]"}]})
                self.send_response(404)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tracker(self, conversation: str) -> dict:
        return self.trackers.setdefault(
            conversation,
            {"sender_id": conversation, "slots": {}, "events": [], "paused": False, "latest_input_channel": "rest"},
        )

    def customer_says(self, conversation: str, text: str) -> None:
        self.tracker(conversation)["events"].append({"event": "user", "text": text, "timestamp": 1.0})


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('console') / 'shop.sqlite3'}"
    engine = make_engine(url)
    seed(engine, orders=60)
    store = ConsoleStore(engine)
    store.add_staff("alice", "agent", PASSWORD)
    store.add_staff("bob", "agent", PASSWORD)
    store.add_staff("root", "admin", PASSWORD)
    store.add_staff("mallory", "agent", PASSWORD)
    return url, engine, store


@pytest.fixture(scope="module")
def rasa():
    fake = FakeRasa()
    yield fake
    fake.server.shutdown()


@pytest.fixture(scope="module")
def web(shop, rasa, tmp_path_factory):
    url, _, _ = shop
    log = tmp_path_factory.mktemp("web") / "web.log"
    # One proxy in front (as in `make prod`): its X-Forwarded-Proto says whether the page came over https.
    env = {"KEFU_TOKEN_SECRET": WEB_SECRET, "KEFU_PROXIES_COUNT": "1"}
    with running_web(url, rasa.url, log=log, extra_env=env) as origin:
        yield origin


def login(origin: str, name: str, password: str = PASSWORD) -> tuple[requests.Session, str]:
    http = requests.Session()
    page = http.get(f"{origin}/console/login").text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    csrf = found.group(1)
    response = http.post(
        f"{origin}/console/login", data={"name": name, "password": password, "csrf": csrf}, allow_redirects=False
    )
    assert response.status_code == 302
    me = http.get(f"{origin}/console/api/me")
    return http, (me.json()["csrf"] if me.ok else "")


def new_handoff(shop, conversation: str) -> int:
    url, engine, _ = shop
    handoff_id, created = SqlShopRepository(engine).request_handoff(conversation, "customer_request")
    assert created
    return handoff_id


def test_without_a_session_every_console_page_and_api_is_refused(web):
    assert requests.get(f"{web}/console/api/queue").status_code == 401
    assert requests.get(f"{web}/console/api/me").status_code == 401
    assert requests.get(f"{web}/console/api/handoffs/1").status_code == 401
    assert requests.post(f"{web}/console/api/handoffs/1/claim").status_code == 401
    assert requests.get(f"{web}/console/api/canned").status_code == 401
    page = requests.get(f"{web}/console/", allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"].endswith("/console/login")
    assert requests.get(f"{web}/console/api/queue", cookies={"kefu_console": "forged"}).status_code == 401


def test_the_chat_page_is_still_served(web):
    assert "在线客服" in requests.get(f"{web}/").text
    assert "KEFU_CONFIG" in requests.get(f"{web}/config.js").text
    assert requests.get(f"{web}/static/chat.js").status_code == 200
    assert requests.get(f"{web}/static/products/x.jpg").headers["Content-Type"].startswith("image/svg")
    assert requests.get(f"{web}/static/../kefu/web.py").status_code == 404
    assert requests.post(f"{web}/api/demo-token").status_code == 403  # demo login is off here


def test_session_cookie_is_httponly_and_samesite(web):
    http = requests.Session()
    page = http.get(f"{web}/console/login").text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    csrf = found.group(1)
    response = http.post(
        f"{web}/console/login", data={"name": "alice", "password": PASSWORD, "csrf": csrf}, allow_redirects=False
    )
    cookie = response.headers["Set-Cookie"]
    assert "kefu_console=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # Login without the login form's token is refused.
    bare = requests.post(f"{web}/console/login", data={"name": "alice", "password": PASSWORD}, allow_redirects=False)
    assert "error=csrf" in bare.headers["Location"]


def test_an_agent_cannot_use_admin_routes(web):
    agent, csrf = login(web, "alice")
    assert (
        agent.post(
            f"{web}/console/api/canned", json={"shortcut": "x", "text": "y"}, headers={"X-CSRF-Token": csrf}
        ).status_code
        == 403
    )
    admin, admin_csrf = login(web, "root")
    assert (
        admin.post(
            f"{web}/console/api/canned",
            json={"shortcut": "ship", "text": "今天下单，明天发货"},
            headers={"X-CSRF-Token": admin_csrf},
        ).status_code
        == 200
    )
    assert any(c["shortcut"] == "ship" for c in agent.get(f"{web}/console/api/canned").json()["items"])


def test_a_state_change_without_the_csrf_token_is_refused(web, shop, rasa):
    handoff_id = new_handoff(shop, "web-csrfcase0001")
    agent, csrf = login(web, "alice")
    assert agent.post(f"{web}/console/api/handoffs/{handoff_id}/claim").status_code == 403
    assert (
        agent.post(f"{web}/console/api/handoffs/{handoff_id}/claim", headers={"X-CSRF-Token": "wrong"}).status_code
        == 403
    )
    with session_scope(shop[1]) as s:
        assert s.get(HandoffRequest, handoff_id).status == "waiting"
    assert agent.post(f"{web}/console/logout").status_code == 403


def test_a_second_claim_is_refused_and_names_the_holder(web, shop, rasa):
    conversation = "web-claimcase0001"
    handoff_id = new_handoff(shop, conversation)
    alice, alice_csrf = login(web, "alice")
    bob, bob_csrf = login(web, "bob")
    first = alice.post(f"{web}/console/api/handoffs/{handoff_id}/claim", headers={"X-CSRF-Token": alice_csrf})
    second = bob.post(f"{web}/console/api/handoffs/{handoff_id}/claim", headers={"X-CSRF-Token": bob_csrf})
    assert first.status_code == 200, first.text
    assert second.status_code == 409 and second.json()["holder"] == "alice"
    assert "alice" in second.json()["error"]
    assert rasa.tracker(conversation)["paused"] is True  # Rasa's own pause, through its API
    # Only the holder speaks and hands back.
    assert (
        bob.post(
            f"{web}/console/api/handoffs/{handoff_id}/reply", json={"text": "hi"}, headers={"X-CSRF-Token": bob_csrf}
        ).status_code
        == 403
    )
    assert (
        bob.post(f"{web}/console/api/handoffs/{handoff_id}/handback", headers={"X-CSRF-Token": bob_csrf}).status_code
        == 403
    )
    reply = alice.post(
        f"{web}/console/api/handoffs/{handoff_id}/reply",
        json={"text": "您好，我是客服小艾"},
        headers={"X-CSRF-Token": alice_csrf},
    )
    assert reply.status_code == 200
    assert {"event": "bot", "text": "您好，我是客服小艾", "metadata": {"kefu_agent": "alice"}} in rasa.tracker(
        conversation
    )["events"]
    back = alice.post(f"{web}/console/api/handoffs/{handoff_id}/handback", headers={"X-CSRF-Token": alice_csrf})
    assert back.status_code == 200
    assert rasa.tracker(conversation)["paused"] is False
    executed = [body["name"] for path, body in rasa.posted if path.endswith("/execute") and f"/{conversation}/" in path]
    assert executed == ["utter_handback", "utter_ask_rating"]
    with session_scope(shop[1]) as s:
        row = s.get(HandoffRequest, handoff_id)
        assert row.status == "closed" and row.closed_at is not None
    # The customer rates (the bot's action does this); the panel lists the past hand-off and the rating, by agent.
    _, engine, store = shop
    rating_id = SqlShopRepository(engine).record_rating(conversation, 4, "很耐心")
    assert store.attribute_rating(rating_id, conversation) == store.check_login("alice", PASSWORD).staff.id
    panel = alice.get(f"{web}/console/api/handoffs/{handoff_id}").json()["customer"]
    assert [(h["status"], h["agent"]) for h in panel["handoffs"]] == [("closed", "alice")]
    assert [(r["score"], r["agent"]) for r in panel["ratings"]] == [(4, "alice")]


def test_customer_text_is_kept_verbatim_for_the_console(web, shop, rasa):
    conversation = "web-hostile00001"
    rasa.customer_says(conversation, HOSTILE)
    handoff_id = new_handoff(shop, conversation)
    agent, _ = login(web, "alice")
    data = agent.get(f"{web}/console/api/handoffs/{handoff_id}").json()
    assert data["transcript"][-1] == {"who": "customer", "text": HOSTILE, "t": 1.0}
    csp = agent.get(f"{web}/console/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp


def console_in_browser(playwright, web: str, name: str):
    """Headless Chromium signed in to the console as `name`: (browser, page)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
    page = browser.new_page(locale="zh-CN")
    page.goto(f"{web}/console/")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    return browser, page


@pytest.mark.browser
def test_hostile_customer_text_shows_as_text_in_the_console(web, shop, rasa):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    conversation = "web-hostile00002"
    rasa.customer_says(conversation, HOSTILE)
    handoff_id = new_handoff(shop, conversation)
    with sync_playwright() as playwright:
        browser, page = console_in_browser(playwright, web, "mallory")
        page.wait_for_selector(f".queue .item[data-id='{handoff_id}']", timeout=15000)
        page.click(f".queue .item[data-id='{handoff_id}']")
        page.wait_for_selector("#transcript .line.from-customer .bubble", timeout=15000)
        assert HOSTILE in page.locator("#transcript .line.from-customer .bubble").all_inner_texts()
        assert page.locator("#transcript img, #transcript script").count() == 0
        assert page.evaluate("window.pwned") is None
        browser.close()


@pytest.mark.browser
def test_canned_replies_by_slash_or_chip_and_a_title_badge_for_a_new_request(web, shop, rasa):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    _, _, store = shop
    store.save_canned_reply("发货", "今天下单，明天就发货哦～")
    store.save_canned_reply("sd", "好的，请稍等，我帮您查一下。")
    conversation = "web-cannedcase001"
    with sync_playwright() as playwright:
        browser, page = console_in_browser(playwright, web, "bob")
        page.wait_for_selector("#live.on", timeout=15000)
        page.wait_for_selector(".chip", state="attached", timeout=15000)  # the canned replies are loaded
        # The agent is looking at another window when the request comes in.
        page.evaluate("() => { document.hasFocus = () => false; }")
        handoff_id = new_handoff(shop, conversation)
        page.wait_for_selector(f".queue .item[data-id='{handoff_id}']", timeout=15000)
        page.wait_for_function("() => /^\\(\\d+\\) 新的转人工/.test(document.title)", timeout=5000)
        page.click(f".queue .item[data-id='{handoff_id}']")
        page.click("#claim")
        page.wait_for_selector("#handback:not([hidden])", timeout=10000)

        # "/" then the start of a shortcut: a menu; Enter puts the reply in the box, Enter again sends it.
        page.click("#reply")
        page.keyboard.type("/发")
        page.wait_for_selector("#canned-menu:not([hidden]) li", timeout=5000)
        offered = page.locator("#canned-menu li").all_inner_texts()
        assert offered[0] == "/发货 今天下单，明天就发货哦～"  # the shortcut first, then replies with the word
        page.keyboard.press("Enter")
        assert page.input_value("#reply") == "今天下单，明天就发货哦～"
        page.keyboard.press("Enter")
        # A click on a chip inserts its reply.
        page.wait_for_function("() => document.querySelector('#reply').value === ''", timeout=10000)
        page.locator(".chip", has_text="sd").click()
        assert page.input_value("#reply") == "好的，请稍等，我帮您查一下。"
        page.click("#send")
        page.wait_for_function(
            "() => document.querySelectorAll('#transcript .line.from-agent').length === 2", timeout=10000
        )
        browser.close()
    said = [e["text"] for e in rasa.tracker(conversation)["events"] if e["event"] == "bot"]
    assert said == ["今天下单，明天就发货哦～", "好的，请稍等，我帮您查一下。"]


def test_the_queue_lists_waiting_handoffs_oldest_first_with_reason_and_wait(web, shop, rasa):
    from datetime import timedelta

    from kefu.db.engine import utcnow

    _, engine, _ = shop
    older, newer = new_handoff(shop, "web-queueorder01"), new_handoff(shop, "web-queueorder02")
    with session_scope(engine) as s:  # the second one came first
        s.get(HandoffRequest, newer).created_at = utcnow() - timedelta(minutes=20)
        s.get(HandoffRequest, older).created_at = utcnow() - timedelta(minutes=5)
    rasa.customer_says("web-queueorder02", "我要投诉")
    agent, _ = login(web, "alice")

    def listed() -> list[dict] | None:
        """Ours in the queue, once the watcher (every second) has read the conversation from Rasa."""
        items = agent.get(f"{web}/console/api/queue").json()["items"]
        ours = [i for i in items if i["conversation_id"].startswith("web-queueorder")]
        return ours if ours and ours[0]["last_messages"] else None

    items = wait_until(listed)
    assert [i["id"] for i in items] == [newer, older]
    assert items[0]["reason_zh"] == "顾客要求" and items[0]["channel"] == "web"
    assert 20 * 60 <= items[0]["waited_seconds"] < 25 * 60
    assert items[0]["last_messages"] == ["我要投诉"] and items[0]["customer"] == "访客 …er02"


def test_logout_ends_the_session(web):
    agent, csrf = login(web, "alice")
    assert agent.get(f"{web}/console/api/me").status_code == 200
    assert agent.post(f"{web}/console/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert agent.get(f"{web}/console/api/me").status_code == 401


def test_the_session_cookie_is_secure_behind_a_tls_proxy(web):
    """Served over https (here: the proxy in front says so, and the web
    server trusts one proxy), the cookie is Secure."""
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    page = requests.get(f"{web}/console/login", headers=headers)
    assert "Secure" in page.headers["Set-Cookie"]
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    csrf = found.group(1)
    response = requests.post(  # (a client keeps a Secure cookie for https: sent by hand over this test's http)
        f"{web}/console/login",
        data={"name": "alice", "password": PASSWORD, "csrf": csrf},
        headers=headers,
        cookies={"kefu_login_csrf": csrf},
        allow_redirects=False,
    )
    assert response.status_code == 302 and response.headers["Location"] == "/console/"
    session_cookie = [c for c in response.raw.headers.getlist("Set-Cookie") if c.startswith("kefu_console=")]
    assert session_cookie and "Secure" in session_cookie[0] and "HttpOnly" in session_cookie[0]
    plain = requests.get(f"{web}/console/login")
    assert "Secure" not in plain.headers["Set-Cookie"]


def test_notes_and_tags_survive_a_restart(shop, rasa, tmp_path):
    url, engine, _ = shop
    conversation = "web-notescase001"
    handoff_id = new_handoff(shop, conversation)
    with running_web(url, rasa.url, log=tmp_path / "web1.log") as origin:
        agent, csrf = login(origin, "alice")
        assert (
            agent.post(
                f"{origin}/console/api/handoffs/{handoff_id}/notes",
                json={"text": "老顾客，耳机第二次坏"},
                headers={"X-CSRF-Token": csrf},
            ).status_code
            == 200
        )
        assert (
            agent.post(
                f"{origin}/console/api/handoffs/{handoff_id}/tags", json={"tag": "VIP"}, headers={"X-CSRF-Token": csrf}
            ).status_code
            == 200
        )
    with running_web(url, rasa.url, log=tmp_path / "web2.log") as origin:
        agent, _ = login(origin, "alice")  # sessions are in the database, but sign in anew anyway
        customer = agent.get(f"{origin}/console/api/handoffs/{handoff_id}").json()["customer"]
        assert customer["tags"] == ["VIP"]
        assert [n["text"] for n in customer["notes"]] == ["老顾客，耳机第二次坏"]
        assert customer["verified"] is False and "profile" not in customer


def test_opening_a_verified_customers_orders_is_audited_with_the_agent(web, shop, rasa):
    _, engine, store = shop
    conversation = "web-verified0001"
    rasa.tracker(conversation)["slots"]["customer_id"] = 1.0
    handoff_id = new_handoff(shop, conversation)
    agent, _ = login(web, "alice")
    panel = agent.get(f"{web}/console/api/handoffs/{handoff_id}").json()["customer"]
    assert panel["verified"] and "****" in panel["profile"]["phone"]
    orders = agent.get(f"{web}/console/api/handoffs/{handoff_id}/orders")
    assert orders.status_code == 200 and orders.json()["orders"]
    alice_id = store.check_login("alice", PASSWORD).staff.id
    with session_scope(engine) as s:
        rows = s.execute(select(AuditLog).where(AuditLog.conversation_id == conversation)).scalars().all()
        assert [(r.action, r.staff_id) for r in rows] == [("console_view_orders", alice_id)]
    # An anonymous conversation's orders are not shown.
    anonymous = new_handoff(shop, "web-anonymous001")
    assert agent.get(f"{web}/console/api/handoffs/{anonymous}/orders").status_code == 403


def test_repeated_wrong_passwords_lock_the_account(web, shop):
    _, _, store = shop
    store.add_staff("carol", "agent", PASSWORD)
    for _ in range(5):
        http = requests.Session()
        page = http.get(f"{web}/console/login").text
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found, page[:500]
        csrf = found.group(1)
        http.post(
            f"{web}/console/login",
            data={"name": "carol", "password": "wrong-password", "csrf": csrf},
            allow_redirects=False,
        )
    _, csrf = login(web, "carol")  # the right password, but locked
    assert csrf == ""
    assert store.check_login("carol", PASSWORD).locked_until is not None


def test_passwords_are_stored_as_salted_scrypt(shop):
    _, engine, store = shop
    from kefu.db.models import StaffAccount

    with session_scope(engine) as s:
        hashes = (
            s.execute(select(StaffAccount.password_hash).where(StaffAccount.name.in_(["alice", "bob"]))).scalars().all()
        )
    assert all(h.startswith("scrypt$") and PASSWORD not in h for h in hashes)
    assert hashes[0] != hashes[1]  # same password, different salt


def test_a_left_message_is_stored_and_listed_as_a_task(web, shop, rasa):
    _, engine, store = shop
    from kefu.db.models import ConversationMessage

    conversation = "web-leftmessage01"
    handoff_id = new_handoff(shop, conversation)
    store.mark_left_message(conversation)
    rasa.tracker(conversation)["events"] += [
        {"event": "user", "text": "转人工"},
        {"event": "pause"},
        {"event": "user", "text": "明天上午请打电话给我"},
    ]

    def kept():
        with session_scope(engine) as s:
            return (
                s.execute(
                    select(ConversationMessage.text).where(
                        ConversationMessage.handoff_id == handoff_id, ConversationMessage.sender == "customer"
                    )
                )
                .scalars()
                .all()
            )

    assert wait_until(kept) == ["明天上午请打电话给我"]
    agent, _ = login(web, "alice")
    item = next(i for i in agent.get(f"{web}/console/api/queue").json()["items"] if i["id"] == handoff_id)
    assert item["left_message"] is True
    assert agent.get(f"{web}/console/api/handoffs/{handoff_id}").json()["left_messages"] == ["明天上午请打电话给我"]
    assert kept() == ["明天上午请打电话给我"]  # stored once, not once per second


def test_an_unclaimed_handoff_gets_one_polite_update(web, shop, rasa):
    import time

    from sqlalchemy import update

    from kefu.db.engine import utcnow

    _, engine, _ = shop
    conversation = "web-waitinglong01"
    handoff_id = new_handoff(shop, conversation)
    with session_scope(engine) as s:
        s.execute(
            update(HandoffRequest).where(HandoffRequest.id == handoff_id).values(created_at=utcnow().replace(year=2020))
        )

    def updates():
        return [body["name"] for path, body in rasa.posted if path.endswith("/execute") and f"/{conversation}/" in path]

    assert wait_until(updates) == ["utter_handoff_still_waiting"]
    time.sleep(2.5)
    assert updates() == ["utter_handoff_still_waiting"]


def test_agent_replies_are_pushed_to_the_chat_page_and_replayed_after_a_reconnect(web, shop, rasa):
    conversation = "web-pushcase00001"
    handoff_id = new_handoff(shop, conversation)
    session_token = sign_session_token(conversation, secret=WEB_SECRET)
    # Only the holder of the chat's session token listens to it.
    assert requests.get(f"{web}/api/chat/events", params={"sender": conversation}).status_code == 403
    assert (
        requests.get(
            f"{web}/api/chat/events",
            params={
                "sender": conversation,
                "session_token": sign_session_token("web-someoneelse0001", secret=WEB_SECRET),
            },
        ).status_code
        == 403
    )
    alice, csrf = login(web, "alice")
    assert alice.post(f"{web}/console/api/handoffs/{handoff_id}/claim", headers={"X-CSRF-Token": csrf}).ok
    with requests.get(
        f"{web}/api/chat/events",
        params={"sender": conversation, "session_token": session_token},
        stream=True,
        timeout=10,
    ) as sse:
        lines = sse.iter_lines(decode_unicode=True)
        assert alice.post(
            f"{web}/console/api/handoffs/{handoff_id}/reply",
            json={"text": "第一条回复"},
            headers={"X-CSRF-Token": csrf},
        ).ok
        event = json.loads(next(line for line in lines if line.startswith("data:"))[5:])
    assert event["type"] == "bot" and event["agent"] == "alice" and event["messages"] == [{"text": "第一条回复"}]
    # A page that comes back with the last id it saw gets only what it missed.
    assert alice.post(
        f"{web}/console/api/handoffs/{handoff_id}/reply", json={"text": "第二条回复"}, headers={"X-CSRF-Token": csrf}
    ).ok
    with requests.get(
        f"{web}/api/chat/events",
        params={"sender": conversation, "session_token": session_token, "after": event["id"]},
        stream=True,
        timeout=10,
    ) as sse:
        missed = json.loads(next(line for line in sse.iter_lines(decode_unicode=True) if line.startswith("data:"))[5:])
    assert missed["messages"] == [{"text": "第二条回复"}]


V1_MODELS_COMMIT = "71708ba"  # the last commit before the console's schema


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_version_1_database_is_migrated_for_the_console(backend, request, tmp_path):
    """A shop database made by the models of before the console (schema version 1)
    gets the new columns and tables, keeping its rows."""
    import subprocess
    import types

    from sqlalchemy import inspect

    from kefu.db.engine import SCHEMA_VERSION, current_schema_version, ensure_schema, utcnow

    root = Path(__file__).resolve().parents[1]
    try:
        source = subprocess.run(
            ["git", "show", f"{V1_MODELS_COMMIT}:kefu/db/models.py"],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the version 1 models are not in this checkout's history")
    v1 = types.ModuleType("kefu_models_v1")
    exec(compile(source, "models_v1.py", "exec"), v1.__dict__)  # noqa: S102 - our own file, from git
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'v1.sqlite3'}"
    else:
        url = request.getfixturevalue("empty_postgres_url")
    engine = make_engine(url)
    v1.Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(v1.SchemaVersion.__table__.insert().values(version=1, applied_at=utcnow()))
        conn.execute(
            v1.HandoffRequest.__table__.insert().values(
                conversation_id="old-conversation", reason="complaint", status="waiting", created_at=utcnow()
            )
        )
    assert current_schema_version(engine) == 1
    assert ensure_schema(engine) == SCHEMA_VERSION == current_schema_version(engine)
    # Step 3: wrong phone tails are counted per order from an index.
    assert "ix_audit_log_order_action_time" in {i["name"] for i in inspect(engine).get_indexes("audit_log")}
    # Step 4: notices (consent, outbox, campaigns); step 5: FAQ answers edited in the console;
    # step 6 (one open ticket per item) is tested in tests/test_demo_and_db.py.
    assert {"notice_consents", "notices", "notice_campaigns", "faq_answers"} <= set(inspect(engine).get_table_names())
    columns = {c["name"] for c in inspect(engine).get_columns("handoff_requests")}
    assert {"claimed_by", "claimed_at", "closed_at", "reminded_at", "left_message"} <= columns
    store = ConsoleStore(engine)
    old = next(h for h in store.open_handoffs() if h.conversation_id == "old-conversation")
    assert old.left_message is False and old.status == "waiting"
    staff = store.add_staff("migrated", "agent", PASSWORD)
    assert store.claim(old.id, staff.id).ok
    engine.dispose()


def test_a_left_message_nobody_took_for_long_lets_the_bot_answer_again(web, shop, rasa):
    from sqlalchemy import update

    from kefu.db.engine import utcnow

    _, engine, store = shop
    conversation = "web-leftlong00001"
    handoff_id = new_handoff(shop, conversation)
    store.mark_left_message(conversation)
    rasa.tracker(conversation)["paused"] = True
    with session_scope(engine) as s:
        s.execute(
            update(HandoffRequest).where(HandoffRequest.id == handoff_id).values(created_at=utcnow().replace(year=2020))
        )
    assert wait_until(lambda: rasa.tracker(conversation)["paused"] is False)
    item = next(i for i in store.open_handoffs() if i.id == handoff_id)
    assert item.left_message and item.status == "waiting"  # still a task for the agents


def test_kefu_staff_add_reads_the_password_from_stdin(shop):
    import os
    import subprocess
    import sys

    url, _, store = shop
    env = {**os.environ, "DATABASE_URL": url}
    added = subprocess.run(
        [sys.executable, "-m", "kefu.cli", "staff", "add", "zed", "--role", "admin"],
        input="a long enough password\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    assert store.check_login("zed", "a long enough password").staff.role == "admin"
    short = subprocess.run(
        [sys.executable, "-m", "kefu.cli", "staff", "add", "yan"],
        input="short\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert short.returncode == 2 and "8 characters" in short.stderr
