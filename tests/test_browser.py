"""The chat page in a real browser: Debian's headless Chromium driven by
Playwright, against the running servers. Screenshots are kept in
tests/artifacts/ as test artifacts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kefu.shop.demo import showcase

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.model]
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CASES = showcase()
SECRET = "browser-secret"


@pytest.fixture(scope="module")
def page_url(trained_model, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    from kefu.db.engine import make_engine
    from kefu.shop.demo import seed
    from kefu.testing import free_port, running_servers, wait_for

    url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'shop.sqlite3'}"
    seed(make_engine(url), orders=100)
    web_port = free_port()
    origin = f"http://127.0.0.1:{web_port}"
    env = {"KEFU_TOKEN_SECRET": SECRET, "KEFU_DEMO_LOGIN": "1"}
    with running_servers(trained_model, url, extra_env=env, rasa_args=("--cors", origin)) as servers:
        log = servers.workdir / "web.log"
        web = subprocess.Popen(
            [sys.executable, "-m", "kefu.web", "--port", str(web_port), "--rasa-url", servers.rasa_url],
            cwd=ROOT,
            env={**os.environ, **env, "DATABASE_URL": url},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(f"{origin}/", web, log)
            yield origin
        finally:
            web.terminate()
            web.wait(10)


@pytest.fixture()
def browser_page(page_url):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
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
        context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
        page = context.new_page()
        page.goto(page_url)
        yield page
        browser.close()


def bot_texts(page) -> list[str]:
    return page.locator("#messages .row.bot .bubble").all_inner_texts()


def say(page, text: str) -> None:
    before = page.locator("#messages .row.bot").count()
    page.fill("#text", text)
    page.click("#send")
    page.wait_for_function(f"document.querySelectorAll('#messages .row.bot').length > {before}", timeout=30000)
    page.wait_for_selector("#typing", state="hidden", timeout=30000)


def test_chat_product_card_quick_reply_order_lookup_and_reload(browser_page):
    page = browser_page
    page.wait_for_selector("#messages .row.bot .bubble", timeout=30000)  # the greeting
    assert any("客服" in t for t in bot_texts(page)), bot_texts(page)

    say(page, "小米14多少钱")
    card = page.locator(".card").last
    assert "小米14" in card.inner_text() and "¥3,999.00" in card.inner_text()

    before = page.locator("#messages .row.bot").count()
    page.locator(".buttons button", has_text="查订单").last.click()  # a quick reply from the greeting
    page.wait_for_function(f"document.querySelectorAll('#messages .row.bot').length > {before}", timeout=30000)
    page.wait_for_selector("#typing", state="hidden", timeout=30000)
    assert "订单号" in bot_texts(page)[-1]
    say(page, CASES["shipped"]["order_no"])
    assert "后四位" in bot_texts(page)[-1]
    say(page, CASES["shipped"]["phone_tail"])
    assert any("索尼WH-1000XM5" in t for t in page.locator(".card").all_inner_texts())
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)

    sender = page.evaluate("window.kefuChat.state.sender")
    page.reload()
    page.wait_for_selector("#messages .row.bot .bubble")
    assert page.evaluate("window.kefuChat.state.sender") == sender
    assert any("索尼WH-1000XM5" in t for t in page.locator(".card").all_inner_texts())
    say(page, "这个订单能退吗")  # the session is the same: the order is remembered
    page.screenshot(path=str(ARTIFACTS / "chat-after-reload.png"), full_page=True)


def test_logged_in_switch_skips_the_phone_tail(browser_page):
    page = browser_page
    page.wait_for_selector("#messages .row.bot .bubble", timeout=30000)
    page.check("#login")
    say(page, "查一下我的订单")
    buttons = page.locator(".buttons button").all_inner_texts()
    assert any(CASES["delivered_2d"]["order_no"] in b for b in buttons)
    page.screenshot(path=str(ARTIFACTS / "chat-logged-in.png"), full_page=True)


def test_the_sender_id_comes_from_the_server_and_unticking_logged_in_forgets_the_customer(browser_page):
    page = browser_page
    page.wait_for_selector("#messages .row.bot .bubble", timeout=30000)
    sender = page.evaluate("window.kefuChat.state.sender")
    assert re.fullmatch(r"web-[0-9a-f]{32}", sender) and page.evaluate("window.kefuChat.state.sessionToken")
    page.check("#login")
    say(page, "查一下我的订单")
    order_no = CASES["delivered_2d"]["order_no"]
    listed = page.locator(".buttons button", has_text=order_no).count()
    assert listed >= 1
    page.uncheck("#login")
    say(page, "查一下我的订单")
    assert page.evaluate("window.kefuChat.state.sender") not in (sender, None)
    assert page.locator(".buttons button", has_text=order_no).count() == listed  # no list this time
    assert "订单号" in bot_texts(page)[-1]


def click_reply(page, title: str) -> None:
    before = page.locator("#messages .row.bot").count()
    page.locator(".buttons button", has_text=title).last.click()
    page.wait_for_function(f"document.querySelectorAll('#messages .row.bot').length > {before}", timeout=30000)
    page.wait_for_selector("#typing", state="hidden", timeout=30000)


def test_a_return_with_the_reason_and_confirmation_buttons(browser_page):
    page = browser_page
    page.wait_for_selector("#messages .row.bot .bubble", timeout=30000)
    say(page, "我要退货")
    say(page, CASES["delivered_2d"]["order_no"])
    say(page, CASES["delivered_2d"]["phone_tail"])
    assert "原因" in bot_texts(page)[-1]
    click_reply(page, "不喜欢")
    assert "确认" in bot_texts(page)[-1]
    click_reply(page, "确认")
    assert any(re.search(r"AS\d{14}", t) for t in bot_texts(page)[-2:]), bot_texts(page)[-2:]
    page.screenshot(path=str(ARTIFACTS / "chat-return.png"), full_page=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("你好,我想查一下订单", ("订单号",)),  # the order flow asks for the order number
        ("你好，我想退货，需要怎么操作?", ("订单号",)),  # so does the return flow
        ("好的 我明白了，谢谢你这么耐心地跟我解释 帮了大忙", ("不客气", "应该的")),  # utter_you_are_welcome
    ],
)
def test_the_messages_quoted_in_issue_12_are_answered_for_what_they_ask(browser_page, text, expected):
    page = browser_page
    page.wait_for_selector("#messages .row.bot .bubble", timeout=30000)
    earlier = len(bot_texts(page))
    say(page, text)
    replies = bot_texts(page)[earlier:]
    assert any(word in reply for reply in replies for word in expected), replies
    assert not any("没太理解" in reply or "您是想问" in reply for reply in replies), replies
