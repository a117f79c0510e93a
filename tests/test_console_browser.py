"""A whole hand-off in real browsers: a customer on the chat page and an
agent in the console (two Chromium contexts), against the real Rasa server,
action server, web server and shop database. Screenshots of both screens
go to tests/artifacts/."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import select

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.model]
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AGENT, PASSWORD = "小李", "console-pass-1"


@pytest.fixture(scope="module")
def site(trained_model, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    from kefu.console.store import ConsoleStore
    from kefu.db.engine import make_engine
    from kefu.shop.demo import seed
    from kefu.testing import free_port, running_servers, running_web

    url = f"sqlite:///{tmp_path_factory.mktemp('console-browser') / 'shop.sqlite3'}"
    engine = make_engine(url)
    seed(engine, orders=60)
    agent = ConsoleStore(engine).add_staff(AGENT, "agent", PASSWORD)
    web_port = free_port()
    origin = f"http://127.0.0.1:{web_port}"
    # Service hours all day, so that the test does not depend on the clock.
    env = {"KEFU_SERVICE_HOURS": "0-24", "KEFU_TOKEN_SECRET": "console-secret", "KEFU_DEMO_LOGIN": "1"}
    with running_servers(trained_model, url, extra_env=env, rasa_args=("--cors", origin)) as servers:
        with running_web(url, servers.rasa_url, extra_env=env, port=web_port, log=servers.workdir / "web.log") as web:
            yield {"origin": web, "servers": servers, "engine": engine, "agent_id": agent.id}


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
        ],
    )


def customer_types(page, text: str) -> None:
    page.fill("#text", text)
    page.click("#send")
    page.wait_for_function(
        "!document.querySelector('#typing') || document.querySelector('#typing').hidden", timeout=30000
    )


def bot_rows(page) -> int:
    """Rows the bot (not an agent) said on the customer's page."""
    return page.locator("#messages .row.bot:not(.agent)").count()


def test_a_whole_handoff_in_two_browsers(site):
    from playwright.sync_api import sync_playwright

    from kefu.db.models import SatisfactionRating

    origin, servers, engine = site["origin"], site["servers"], site["engine"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        agent = browser.new_context(viewport={"width": 1360, "height": 820}, locale="zh-CN").new_page()
        customer = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN").new_page()

        # The agent signs in first: an agent in the console makes hand-offs queue for a person.
        agent.goto(f"{origin}/console/")
        agent.fill("#name", AGENT)
        agent.fill("#password", PASSWORD)
        agent.click("#login-submit")
        agent.wait_for_selector("#live.on", timeout=15000)
        agent.evaluate("window.__sameConsolePage = true")

        customer.goto(origin)
        customer.wait_for_selector("#messages .row.bot .bubble", timeout=30000)  # the greeting
        customer.check("#login")  # the demo shop's logged-in customer 王小明 (a signed token)
        sender = customer.evaluate("window.kefuChat.state.sender")
        before = bot_rows(customer)
        customer_types(customer, "转人工")
        customer.wait_for_function(f"document.querySelectorAll('#messages .row.bot').length > {before}", timeout=30000)
        assert "人工客服" in customer.locator("#messages .row.bot .bubble").last.inner_text()

        # The request appears in the console by itself, with its reason and channel.
        item = agent.locator("#waiting .item").first
        item.wait_for(timeout=15000)
        assert agent.evaluate("window.__sameConsolePage") is True  # no reload
        assert "顾客要求" in item.inner_text() and "网页" in item.inner_text()
        assert "王小明（已验证）" in item.inner_text()
        item.click()
        agent.wait_for_selector("#claim:not([hidden])", timeout=10000)
        agent.click("#claim")
        agent.wait_for_selector("#handback:not([hidden])", timeout=10000)
        assert servers.get_json(f"/conversations/{sender}/tracker")["paused"] is True

        bot_rows_when_claimed = bot_rows(customer)
        customer_words = ["我买的耳机左边没声音", "订单是上周买的"]
        agent_words = ["您好，我是客服小李，请问是哪一款耳机？", "好的，我已为您登记换货，请留意短信通知。"]
        for customer_text, agent_text in zip(customer_words, agent_words):
            customer_types(customer, customer_text)
            agent.wait_for_function(
                "text => Array.from(document.querySelectorAll('#transcript .line.from-customer .bubble'))"
                ".some(b => b.textContent === text)",
                arg=customer_text,
                timeout=10000,
            )
            agents_before = customer.locator("#messages .row.bot.agent").count()
            agent.fill("#reply", agent_text)
            sent = time.monotonic()
            agent.click("#send")
            customer.wait_for_function(
                f"document.querySelectorAll('#messages .row.bot.agent').length > {agents_before}", timeout=5000
            )
            latency = time.monotonic() - sent
            print(f"agent reply reached the chat page in {latency:.2f} s")
            assert latency < 1.5
            assert customer.locator("#messages .row.bot.agent .bubble").last.inner_text() == agent_text
            assert customer.locator("#messages .agent-name").last.inner_text() == f"人工客服 {AGENT}"

        # The customer panel: profile with a masked phone; orders on request, audited with the agent.
        agent.wait_for_selector("#profile .field", timeout=10000)
        assert "138****" in agent.locator("#profile").inner_text()
        agent.click("#show-orders")
        agent.wait_for_selector("#orders li:not(.none)", timeout=10000)
        agent.fill("#tag-input", "耳机售后")
        agent.click("#tag-form button")
        agent.wait_for_selector("#tags .tag", timeout=10000)
        # (a function, not an expression: the console's CSP forbids eval)
        agent.wait_for_function(
            "() => document.querySelectorAll('#transcript .line.from-agent').length === 2", timeout=10000
        )

        # The bot said nothing while the agent held the conversation.
        assert bot_rows(customer) == bot_rows_when_claimed
        events = servers.get_json(f"/conversations/{sender}/tracker")["events"]
        paused_at = max(i for i, e in enumerate(events) if e["event"] == "pause")
        bot_after = [e for e in events[paused_at:] if e["event"] == "bot"]
        assert [e["text"] for e in bot_after] == agent_words
        assert all((e.get("metadata") or {}).get("kefu_agent") == AGENT for e in bot_after)
        assert not [e for e in events[paused_at:] if e["event"] == "action" and e["name"] != "action_listen"]

        agent.screenshot(path=str(ARTIFACTS / "console.png"))
        customer.screenshot(path=str(ARTIFACTS / "chat-with-agent.png"), full_page=True)

        # Hand back: the bot thanks the customer and asks for a rating, on the page without a reload.
        before = bot_rows(customer)
        agent.click("#handback")
        customer.wait_for_function(
            f"document.querySelectorAll('#messages .row.bot:not(.agent)').length >= {before + 2}", timeout=10000
        )
        texts = customer.locator("#messages .row.bot .bubble").all_inner_texts()
        assert "感谢您的耐心" in texts[-2] and "打个分" in texts[-1]
        assert servers.get_json(f"/conversations/{sender}/tracker")["paused"] is False

        before = bot_rows(customer)
        customer.locator(".buttons button", has_text="非常满意").last.click()
        customer.wait_for_function(
            f"document.querySelectorAll('#messages .row.bot:not(.agent)').length > {before}", timeout=30000
        )
        customer.screenshot(path=str(ARTIFACTS / "chat-after-handback.png"), full_page=True)
        browser.close()

    from kefu.db.engine import session_scope
    from kefu.db.models import AuditLog

    with session_scope(engine) as s:
        audit = s.execute(
            select(AuditLog.action, AuditLog.staff_id)
            .where(AuditLog.conversation_id == sender)
            .where(AuditLog.staff_id.is_not(None))
        ).all()
        assert audit == [("console_view_orders", site["agent_id"])]
        ratings = (
            s.execute(select(SatisfactionRating).where(SatisfactionRating.conversation_id == sender)).scalars().all()
        )
        assert [(r.score, r.staff_id) for r in ratings] == [(5, site["agent_id"])]
