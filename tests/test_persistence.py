"""Nothing lost by default: a restarted bot continues a conversation where
it was (conversations in SQLite, kefu.sqlite_event_log), and a backup
restored into a fresh directory carries the conversation and its tickets
(`kefu db backup` / `kefu db restore`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kefu.db.engine import make_engine
from kefu.shop.demo import seed, showcase

pytestmark = [pytest.mark.e2e, pytest.mark.model]
CASE = showcase()["delivered_2d"]
ROOT = Path(__file__).resolve().parents[1]


def text_of(messages: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def kefu_cli(*args: str, env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kefu.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def shop(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    seed(make_engine(url), orders=300)
    return url


def test_a_restarted_bot_continues_the_form_where_it_was(trained_model, shop, tmp_path):
    from kefu.testing import running_servers

    env = {"KEFU_CONVERSATIONS_DB": str(tmp_path / "conversations.sqlite3")}
    sender = f"restart-{uuid.uuid4().hex[:8]}"
    with running_servers(trained_model, shop, extra_env=env) as servers:
        text_of(servers.say(sender, "我要退货"))
        ask_tail = text_of(servers.say(sender, CASE["order_no"]))
        assert "手机" in ask_tail and ("后四位" in ask_tail or "尾号" in ask_tail), ask_tail
    # Both servers stopped and started again: only the file remembers.
    with running_servers(trained_model, shop, extra_env=env) as servers:
        reason_question = text_of(servers.say(sender, CASE["phone_tail"]))
        assert "原因" in reason_question, reason_question


def test_a_backup_restored_elsewhere_continues_the_conversation_and_its_ticket(trained_model, shop, tmp_path):
    from kefu.testing import running_servers

    first = {"DATABASE_URL": shop, "KEFU_CONVERSATIONS_DB": str(tmp_path / "conversations.sqlite3")}
    sender = f"backup-{uuid.uuid4().hex[:8]}"
    with running_servers(trained_model, shop, extra_env=first) as servers:
        servers.say(sender, "我要退货")
        servers.say(sender, CASE["order_no"])
        servers.say(sender, CASE["phone_tail"])
        assert "确认" in text_of(servers.say(sender, "不喜欢"))
        done = text_of(servers.say(sender, "确认"))
        ticket = re.search(r"AS\d{14}", done)
        assert ticket, done
        # Online: the bot is still running while the copy is taken.
        printed = kefu_cli("db", "backup", str(tmp_path / "backup"), env=first)
    assert "shop database" in printed and "conversations" in printed

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    second = {
        "DATABASE_URL": f"sqlite:///{fresh / 'shop.sqlite3'}",
        "KEFU_CONVERSATIONS_DB": str(fresh / "conversations.sqlite3"),
    }
    kefu_cli("db", "restore", str(tmp_path / "backup"), env=second)
    with running_servers(trained_model, second["DATABASE_URL"], extra_env=second) as servers:
        # The conversation remembers the verified order: its tickets without
        # asking for the phone again; and the ticket is found in the shop.
        progress = text_of(servers.say(sender, "售后进度"))
        assert ticket.group(0) in progress, progress
