"""Doors issue 10 found open, each tried the way an attacker would: the
action server, the chat page's endpoints, the start-up checks, tokens and
the masking of sensitive numbers. (The WeChat channel: tests/test_wechat.py;
conversations over the REST channel: tests/test_e2e.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kefu.testing import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


def call(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


# --- 1. the action server ---------------------------------------------------


def test_the_action_servers_gate():
    from kefu.action_server import request_allowed

    secret = "s3cret"
    assert request_allowed("/webhook", "127.0.0.1", "s3cret", secret)
    assert not request_allowed("/webhook", "127.0.0.1", None, secret)  # loopback, no secret
    assert not request_allowed("/webhook", "10.0.0.5", "wrong", secret)
    assert not request_allowed("/webhook", "10.0.0.5", "s3cret\u00e9", secret)  # non-ASCII: refused, no crash
    assert request_allowed("/webhook", "::1", None, "")  # no secret: loopback only
    assert not request_allowed("/webhook", "10.0.0.5", None, "")
    assert not request_allowed("/webhook", "192.168.1.20", None, "")
    assert not request_allowed("/actions", "203.0.113.9", None, "")
    assert request_allowed("/health", "203.0.113.9", None, secret)  # the probe says nothing


def test_the_action_server_refuses_to_listen_beyond_loopback_without_a_secret():
    from kefu.exposure import action_server_problem

    assert action_server_problem("0.0.0.0", "") and action_server_problem("10.0.0.5", "")
    assert action_server_problem("127.0.0.1", "") is None
    assert action_server_problem("0.0.0.0", "s3cret") is None
    started = subprocess.run(
        [sys.executable, "-m", "kefu.action_server", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=ROOT,
        env={**os.environ, "KEFU_ACTION_SECRET": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode != 0 and "KEFU_ACTION_SECRET" in started.stderr


def _listening_addresses(port: int) -> set[str]:
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                addresses.add(address)
    return addresses


@pytest.fixture(scope="module")
def action_server(tmp_path_factory):
    port, secret = free_port(), "action-test-secret"
    log = tmp_path_factory.mktemp("actions") / "actions.log"
    env = {
        **os.environ,
        "KEFU_ACTION_SECRET": secret,
        "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('shop') / 'shop.sqlite3'}",
    }
    env.pop("KEFU_ACTIONS_HOST", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "kefu.action_server", "--actions", "actions", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health", process, log, seconds=120)
        yield port, secret
    finally:
        from kefu.testing import _stop

        _stop(process)


FORGED_CALL = {
    "next_action": "action_start_order_request",
    "version": "3.6.21",
    "domain": {},
    "tracker": {
        "sender_id": "attacker",
        "slots": {"customer_id": 1.0},
        "events": [],
        "latest_message": {"intent": {"name": "query_order"}, "entities": [], "text": "我的订单"},
        "active_loop": {},
        "paused": False,
    },
}


def test_the_launcher_listens_on_loopback_and_wants_the_secret(action_server):
    port, secret = action_server
    assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
    url = f"http://127.0.0.1:{port}/webhook"
    assert call(url, "POST", FORGED_CALL)[0] == 403
    assert call(url, "POST", FORGED_CALL, {"X-Kefu-Action-Secret": "guess"})[0] == 403
    assert call(f"http://127.0.0.1:{port}/actions")[0] == 403
    status, _ = call(url, "POST", FORGED_CALL, {"X-Kefu-Action-Secret": secret})
    assert status == 200


def test_an_action_failure_does_not_echo_the_tracker(action_server):
    port, secret = action_server
    broken = {**FORGED_CALL, "tracker": "6222021234567890128 is not a tracker"}
    status, body = call(f"http://127.0.0.1:{port}/webhook", "POST", broken, {"X-Kefu-Action-Secret": secret})
    assert status == 500 and "6222021234567890128" not in body and "request_body" not in body


# --- 5. the demo login, and the chat page's sessions ------------------------


@pytest.fixture()
def chat_page(tmp_path):
    def start(**env):
        port = free_port()
        log = tmp_path / f"web-{port}.log"
        clean = {k: v for k, v in os.environ.items() if k not in ("KEFU_DEMO_LOGIN", "KEFU_TOKEN_SECRET")}
        process = subprocess.Popen(
            [sys.executable, "-m", "kefu.web", "--port", str(port)],
            cwd=ROOT,
            env={**clean, **env},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        wait_for(f"http://127.0.0.1:{port}/", process, log, seconds=60)
        return f"http://127.0.0.1:{port}"

    started: list[subprocess.Popen] = []
    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def test_the_demo_login_is_off_unless_asked_for(chat_page):
    from kefu.shop.tokens import verify_customer_token

    off = chat_page(KEFU_TOKEN_SECRET="page-secret")
    assert call(f"{off}/api/demo-token", "POST", {})[0] == 403
    on = chat_page(KEFU_TOKEN_SECRET="page-secret", KEFU_DEMO_LOGIN="1")
    status, body = call(f"{on}/api/demo-token", "POST", {})
    assert status == 200 and verify_customer_token(json.loads(body)["token"], secret="page-secret") == 1


def test_the_demo_login_is_refused_beyond_loopback():
    from kefu.exposure import demo_login_allowed, problems

    assert demo_login_allowed("127.0.0.1", {"KEFU_DEMO_LOGIN": "1", "KEFU_TOKEN_SECRET": "x"})
    assert not demo_login_allowed("0.0.0.0", {"KEFU_DEMO_LOGIN": "1", "KEFU_TOKEN_SECRET": "x"})
    assert not demo_login_allowed("127.0.0.1", {"KEFU_TOKEN_SECRET": "x"})
    assert any(
        "KEFU_DEMO_LOGIN" in p
        for p in problems({"KEFU_HOST": "0.0.0.0", "RASA_AUTH_TOKEN": "t", "KEFU_DEMO_LOGIN": "1"})
    )


def test_the_page_gets_its_sender_id_from_the_server(chat_page):
    from kefu.shop.tokens import verify_session_token

    page = chat_page(KEFU_TOKEN_SECRET="page-secret")
    first, second = (json.loads(call(f"{page}/api/session", "POST", {})[1]) for _ in range(2))
    assert first["sender"].startswith("web-") and first["sender"] != second["sender"]
    assert verify_session_token(first["sender"], first["session_token"], secret="page-secret")
    assert not verify_session_token(second["sender"], first["session_token"], secret="page-secret")
    unconfigured = chat_page()
    assert call(f"{unconfigured}/api/session", "POST", {})[0] == 503


# --- 6. Rasa's HTTP API beyond loopback -------------------------------------


def test_make_run_refuses_an_open_http_api_beyond_loopback():
    from kefu.exposure import problems

    assert problems({"KEFU_HOST": "127.0.0.1"}) == []
    assert problems({"KEFU_HOST": "0.0.0.0", "RASA_AUTH_TOKEN": "t"}) == []
    assert problems({"KEFU_HOST": "0.0.0.0", "RASA_JWT_SECRET": "j"}) == []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RASA_", "KEFU_"))}
    refused = subprocess.run(
        [sys.executable, "-m", "kefu.exposure"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "KEFU_HOST": "0.0.0.0"},
        timeout=60,
    )
    assert refused.returncode == 1 and "RASA_AUTH_TOKEN" in refused.stderr


def test_run_sh_checks_before_it_starts_anything(tmp_path):
    """scripts/run.sh itself, with KEFU_HOST=0.0.0.0 and no token: it stops
    at the check, before the database, the model or any server. (Should the
    check be skipped, the unusable DATABASE_URL stops it soon after.)"""
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RASA_", "KEFU_"))}
    env.update(
        KEFU_HOST="0.0.0.0",
        KEFU_RASA_PORT=str(free_port()),
        KEFU_WEB_PORT=str(free_port()),
        KEFU_VENV=str(Path(sys.executable).parents[1]),
        DATABASE_URL=f"sqlite:///{tmp_path / 'missing-directory' / 'never.sqlite3'}",
    )
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "run.sh")],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # run.sh stops what it started
    if "port 5055 is already in use" in stderr:
        pytest.skip("another `make run` holds port 5055")
    assert process.returncode != 0
    assert "RASA_AUTH_TOKEN" in stderr and "nothing was started" in stderr


# --- 10. tokens ---------------------------------------------------------------


@pytest.mark.parametrize(
    "junk",
    [
        "kefu1.1.9999999999.ä" + "0" * 63,
        "kefu1.１.9999999999.abc",
        "kefu1.1.２.abc",
        "\u00e9" * 300,
        "kefu1.1.9999999999.\udcff",
    ],
)
def test_tokens_with_odd_characters_are_refused_not_a_crash(junk):
    from kefu.shop.tokens import verify_customer_token, verify_session_token, verify_wechat_identity

    assert verify_customer_token(junk, secret="s") is None
    assert verify_session_token("web-1", junk, secret="s") is False
    assert verify_wechat_identity(junk, secret="s") is None


def test_a_wechat_identity_counts_only_when_the_channel_signed_it():
    from kefu.shop.tokens import sign_wechat_identity, verify_wechat_identity

    signed = sign_wechat_identity("oKefuDemoWangXiaoMing0000001", secret="s", now=1000)
    assert verify_wechat_identity(signed, secret="s", now=1001) == "oKefuDemoWangXiaoMing0000001"
    assert verify_wechat_identity(signed, secret="other", now=1001) is None
    assert verify_wechat_identity(signed, secret="s", now=1000 + 601) is None  # expired
    forged = signed.replace("Wang", "Zhan")
    assert verify_wechat_identity(forged, secret="s", now=1001) is None
    assert sign_wechat_identity("oUser]]>", secret="s") is None


def test_customer_from_metadata_ignores_an_openid_a_client_wrote(monkeypatch):
    from kefu.shop.service import OrderService
    from kefu.shop.tokens import sign_wechat_identity

    class Repository:
        def customer_by_openid(self, openid):
            return f"customer of {openid}"

    monkeypatch.setenv("KEFU_TOKEN_SECRET", "s")
    service = OrderService.__new__(OrderService)
    service.repository = Repository()
    openid = "oKefuDemoWangXiaoMing0000001"
    assert service.customer_from_metadata({"wechat_openid": openid}) is None
    assert service.customer_from_metadata({"wechat_openid": openid, "wechat_identity": "kefuwx1.x.1.y"}) is None
    signed = {"wechat_identity": sign_wechat_identity(openid)}
    assert service.customer_from_metadata(signed) == f"customer of {openid}"
    assert service.customer_from_metadata(signed, sender_id=f"wechat-{openid}") == f"customer of {openid}"
    assert service.customer_from_metadata(signed, sender_id="web-someone-else") is None


def test_web_channels_refuse_foreign_sender_ids_and_drop_server_only_metadata(monkeypatch):
    from kefu.channels.web import client_metadata, sender_refusal
    from kefu.shop.tokens import sign_session_token

    monkeypatch.setenv("KEFU_TOKEN_SECRET", "s")
    good = {"session_token": sign_session_token("web-abc")}
    assert sender_refusal("web-abc", good) is None
    assert sender_refusal("web-abd", good)  # another sender's token
    assert sender_refusal("web-abc", {})  # none at all
    assert sender_refusal(
        "wechat-oKefuDemoWangXiaoMing0000001",
        {"session_token": sign_session_token("wechat-oKefuDemoWangXiaoMing0000001")},
    )
    assert client_metadata({"wechat_openid": "o", "wechat_identity": "x", "customer_token": "t"}) == {
        "customer_token": "t"
    }
    monkeypatch.delenv("KEFU_TOKEN_SECRET")
    assert sender_refusal("web-abc", good)  # no secret: nothing is accepted


def test_a_failed_rest_message_is_logged_masked(caplog):
    import asyncio

    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    from kefu.channels.web import failures_logged_masked

    async def broken_bot(message):
        raise RuntimeError("the bot failed")

    message = UserMessage("卡号6222 0212 3456 7890 128", CollectingOutputChannel(), "web-x")
    asyncio.run(failures_logged_masked(broken_bot)(message))
    assert "6222***********0128" in caplog.text and "0212" not in caplog.text


def test_new_chat_sessions_are_limited_per_client_address(tmp_path):
    """Each session is a new sender id (three new guesses at a phone tail):
    one address gets only so many."""
    import requests

    from kefu.db.engine import make_engine
    from kefu.shop.demo import seed
    from kefu.testing import free_port, running_web
    from kefu.web import SessionLimiter

    now = [0.0]
    limiter = SessionLimiter(2, 60, clock=lambda: now[0])
    assert [limiter.allow("10.0.0.1") for _ in range(3)] == [True, True, False]
    assert limiter.allow("10.0.0.2")  # another address has its own count
    now[0] += 61
    assert limiter.allow("10.0.0.1")  # and the window passes

    url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    seed(make_engine(url), orders=20)
    env = {"KEFU_TOKEN_SECRET": "limit-secret", "KEFU_SESSIONS_PER_ADDRESS": "2"}
    with running_web(url, f"http://127.0.0.1:{free_port()}", extra_env=env) as origin:
        codes = [requests.post(f"{origin}/api/session", timeout=10).status_code for _ in range(3)]
        refused = requests.post(f"{origin}/api/session", timeout=10)
    assert codes == [200, 200, 429] and refused.status_code == 429 and "稍后再试" in refused.json()["error"]
