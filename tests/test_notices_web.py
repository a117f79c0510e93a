"""Notices through a real `python -m kefu.web`: the shop's event endpoint,
notices pushed to an open chat page and kept for a closed one, the click
count, and the console's campaign API (admins only, CSRF)."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
from sqlalchemy import select

from kefu.console.store import ConsoleStore
from kefu.db.engine import make_engine, session_scope
from kefu.db.models import Notice, NoticeConsent
from kefu.notices.delivery import Deliverer
from kefu.notices.store import Audience, NoticeStore
from kefu.shop.demo import seed
from kefu.shop.tokens import issue_web_session, sign_customer_token
from kefu.testing import free_port, running_web

pytestmark = pytest.mark.slow

SECRET = "notices-web-test-secret"
EVENTS_SECRET = "shop-events-secret"
PASSWORD = "correct horse 1"
LI = 2


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('notices-web') / 'shop.sqlite3'}"
    engine = make_engine(url)
    seed(engine, orders=80)
    ConsoleStore(engine).add_staff("root", "admin", PASSWORD)
    ConsoleStore(engine).add_staff("alice", "agent", PASSWORD)
    return url, NoticeStore(engine)


@pytest.fixture(scope="module")
def web(shop, tmp_path_factory):
    url, _ = shop
    env = {"KEFU_TOKEN_SECRET": SECRET, "KEFU_EVENTS_SECRET": EVENTS_SECRET}
    nowhere = f"http://127.0.0.1:{free_port()}"  # no Rasa: the notices do not need it
    with running_web(url, nowhere, log=tmp_path_factory.mktemp("log") / "web.log", extra_env=env) as origin:
        yield origin


def test_shop_events_need_the_secret_and_make_one_notice_per_event(web, shop):
    _, store = shop
    event = {
        "event_id": "erp-42",
        "customer_id": LI,
        "topic": "shipment",
        "text": "您的订单已出库",
        "order_no": "2026000000000012",
    }
    assert requests.post(f"{web}/api/notices/events", json=event, timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert requests.post(f"{web}/api/notices/events", json=event, headers=wrong, timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {EVENTS_SECRET}"}
    bad = requests.post(f"{web}/api/notices/events", json={"event_id": "x y"}, headers=auth, timeout=5)
    assert bad.status_code == 400 and "customer_id" in bad.json()["error"]
    first = requests.post(f"{web}/api/notices/events", json=event, headers=auth, timeout=5).json()
    again = requests.post(f"{web}/api/notices/events", json=event, headers=auth, timeout=5).json()
    assert first["duplicate"] is False and again == {"ok": True, "notice_id": None, "duplicate": True}
    row = store.get(first["notice_id"])
    assert row["customer_id"] == LI and row["status"] == "pending" and row["kind"] == "service"
    assert json.loads(row["body"])[0]["buttons"][0]["payload"] == '/order_status{"order_no": "2026000000000012"}'


def read_events(lines, wanted: int, seconds: float) -> list[dict]:
    """The next `wanted` events of a stream's lines (one iterator per stream:
    requests' iter_lines cannot be restarted), or fewer after `seconds`
    (checked at each line; the server pings every 15 s)."""
    events, deadline = [], time.monotonic() + seconds
    for line in lines:
        if line and line.startswith("data: "):
            events.append(json.loads(line[len("data: ") :]))
            if len(events) >= wanted:
                break
        if time.monotonic() > deadline:
            break
    return events


def test_kept_notices_show_at_open_and_new_ones_are_pushed(web, shop, monkeypatch):
    _, store = shop
    monkeypatch.setenv("KEFU_TOKEN_SECRET", SECRET)
    deliverer = Deliverer(store, None)
    kept = store.add("kept-1", LI, "service", "external", [{"text": "您的退款已到账"}])
    assert deliverer.deliver(kept).result == "kept"
    sender, session_token = issue_web_session()
    customer_token = sign_customer_token(LI)
    params = {"sender": sender, "session_token": session_token, "customer_token": customer_token}
    with requests.get(f"{web}/api/chat/events", params=params, stream=True, timeout=20) as stream:
        lines = stream.iter_lines(chunk_size=1, decode_unicode=True)
        [first] = read_events(lines, 1, 10)
        assert first["notice"] == kept and first["messages"][0]["text"] == "您的退款已到账"
        time.sleep(1.5)  # the relay's first round notes where it starts
        pushed = store.add("pushed-1", LI, "service", "shipment", [{"text": "您的订单正在派送中"}])
        deliverer.deliver(pushed)
        started = time.monotonic()
        [second] = read_events(lines, 1, 10)
        assert second["notice"] == pushed and time.monotonic() - started < 5
    deadline = time.monotonic() + 5  # noted by the server just after it wrote them to the page
    while time.monotonic() < deadline and store.get(pushed)["status"] != "delivered":
        time.sleep(0.2)
    assert store.get(kept)["status"] == "delivered" and store.get(pushed)["status"] == "delivered"
    # Another customer's page hears nothing of it; a page without the token gets no notices.
    other = sign_customer_token(3)
    sender2, token2 = issue_web_session()
    params2 = {"sender": sender2, "session_token": token2, "customer_token": other}
    with requests.get(f"{web}/api/chat/events", params=params2, stream=True, timeout=(5, 4)) as stream:
        mine = store.add("for-li", LI, "service", "external", [{"text": "李娜的通知"}])
        deliverer.deliver(mine)
        try:
            heard = read_events(stream.iter_lines(chunk_size=1, decode_unicode=True), 1, 3)
        except requests.ConnectionError:  # 4 s without a byte: nothing was pushed
            heard = []
        assert heard == []
    # The click of a notice's button counts once, for its own customer only.
    assert requests.post(f"{web}/api/notices/{pushed}/click", json={"customer_token": other}, timeout=5).ok
    assert store.get(pushed)["clicked_at"] is None
    assert requests.post(f"{web}/api/notices/{pushed}/click", json={}, timeout=5).status_code == 403
    assert requests.post(f"{web}/api/notices/{pushed}/click", json={"customer_token": customer_token}, timeout=5).ok
    assert store.get(pushed)["clicked_at"] is not None


def login(origin: str, name: str) -> tuple[requests.Session, str]:
    http = requests.Session()
    page = http.get(f"{origin}/console/login", timeout=5).text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:200]
    csrf = found.group(1)
    http.post(f"{origin}/console/login", data={"name": name, "password": PASSWORD, "csrf": csrf}, timeout=10)
    return http, http.get(f"{origin}/console/api/me", timeout=5).json()["csrf"]


def test_campaign_api_for_admins_with_csrf(web, shop):
    _, store = shop
    with session_scope(store.engine) as session:
        for customer_id in range(1, 40):
            session.merge(
                NoticeConsent(
                    customer_id=customer_id,
                    kind="marketing",
                    granted=True,
                    channel="web",
                    changed_at=__import__("kefu.db.engine", fromlist=["utcnow"]).utcnow(),
                )
            )
    assert requests.get(f"{web}/console/api/campaigns", timeout=5).status_code == 401
    agent, agent_csrf = login(web, "alice")
    assert agent.get(f"{web}/console/api/campaigns", timeout=5).status_code == 403
    assert agent.get(f"{web}/console/campaigns", timeout=5, allow_redirects=False).status_code == 403
    admin, csrf = login(web, "root")
    listing = admin.get(f"{web}/console/api/campaigns", timeout=5).json()
    promotion = listing["promotions"][0]["id"]
    body = {"promotion_id": promotion, "audience": {"unpaid": True}, "message": "今晚满减"}
    assert admin.post(f"{web}/console/api/campaigns/preview", json=body, timeout=5).status_code == 403  # no CSRF
    preview = admin.post(f"{web}/console/api/campaigns/preview", json=body, headers={"X-CSRF-Token": csrf}, timeout=5)
    assert preview.json()["count"] == store.audience_count(Audience(unpaid=True))
    assert "TD" in preview.json()["messages"][0]["text"] and "今晚满减" in preview.json()["messages"][0]["text"]
    later = dict(body, send_at="2099-01-01T10:00")
    created = admin.post(f"{web}/console/api/campaigns", json=later, headers={"X-CSRF-Token": csrf}, timeout=5).json()
    [campaign] = [
        c for c in admin.get(f"{web}/console/api/campaigns", timeout=5).json()["campaigns"] if c["id"] == created["id"]
    ]
    assert campaign["status"] == "scheduled" and campaign["send_at"] == "2099-01-01T02:00:00Z"
    cancel = f"{web}/console/api/campaigns/{created['id']}/cancel"
    assert admin.post(cancel, headers={"X-CSRF-Token": csrf}, timeout=5).ok
    assert admin.post(cancel, headers={"X-CSRF-Token": csrf}, timeout=5).status_code == 409
    assert admin.get(f"{web}/console/campaigns", timeout=5).status_code == 200
    with session_scope(store.engine) as session:
        assert session.execute(select(Notice.id).where(Notice.campaign_id == created["id"])).first() is None
