"""What the hand-off action says and does depending on the agent console:
no staff accounts (as before), staff but nobody available (留言, paused),
an agent available (queued). Runs the action's code on a real database."""

from __future__ import annotations

import asyncio

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.common import Services, use_services
from kefu.console.store import ConsoleStore
from kefu.db.engine import make_engine, session_scope
from kefu.db.models import HandoffRequest
from kefu.shop.demo import seed
from kefu.shop.repository import SqlShopRepository


@pytest.fixture()
def shop(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    engine = make_engine(url)
    seed(engine, orders=20)
    monkeypatch.setenv("DATABASE_URL", url)
    use_services(Services.over(SqlShopRepository(engine), ConsoleStore(engine)))
    yield engine
    use_services(None)


def run_handoff(sender: str):
    from actions.orders import handoff

    tracker = Tracker(sender, {}, {"intent": {"name": "human_handoff"}, "text": "转人工"}, [], False, None, {}, "")
    dispatcher = CollectingDispatcher()
    events = asyncio.run(handoff(dispatcher, tracker, "customer_request"))
    return [m.get("response") for m in dispatcher.messages], [e["event"] for e in events]


def left_message(engine, sender: str) -> bool:
    with session_scope(engine) as s:
        return s.execute(select(HandoffRequest.left_message).where(HandoffRequest.conversation_id == sender)).scalar()


def test_without_staff_accounts_the_queue_message_is_as_before(shop, monkeypatch):
    monkeypatch.setenv("KEFU_SERVICE_HOURS", "0-24")
    responses, events = run_handoff("web-nostaff00001")
    assert responses == ["utter_handoff_queued"] and "pause" not in events
    assert left_message(shop, "web-nostaff00001") is False


def test_nobody_available_invites_a_message_and_pauses_the_bot(shop, monkeypatch):
    monkeypatch.setenv("KEFU_SERVICE_HOURS", "0-24")
    ConsoleStore(shop).add_staff("away", "agent", "password-1")  # never signed in
    responses, events = run_handoff("web-nobody000001")
    assert responses == ["utter_handoff_leave_message"] and "pause" in events
    assert left_message(shop, "web-nobody000001") is True


def test_outside_service_hours_invites_a_message_even_with_an_agent_online(shop, monkeypatch):
    store = ConsoleStore(shop)
    store.touch(store.add_staff("late", "agent", "password-1").id)
    monkeypatch.setenv("KEFU_SERVICE_HOURS", "0-0")
    responses, events = run_handoff("web-afterhours01")
    assert responses == ["utter_handoff_leave_message"] and "pause" in events


def test_an_agent_online_in_service_hours_queues_the_customer(shop, monkeypatch):
    monkeypatch.setenv("KEFU_SERVICE_HOURS", "0-24")
    store = ConsoleStore(shop)
    store.touch(store.add_staff("online", "agent", "password-1").id)
    responses, events = run_handoff("web-online000001")
    assert responses == ["utter_handoff_queued"] and "pause" not in events
    assert left_message(shop, "web-online000001") is False


def test_a_new_handoff_asks_the_console_one_query(shop, monkeypatch):
    """Whether the console is used and whether an agent is there: one query, not one each."""
    from sqlalchemy import event

    monkeypatch.setenv("KEFU_SERVICE_HOURS", "0-24")
    store = ConsoleStore(shop)
    store.touch(store.add_staff("counted", "agent", "password-1").id)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(shop, "before_cursor_execute", record)
    try:
        responses, _ = run_handoff("web-onequery0001")
    finally:
        event.remove(shop, "before_cursor_execute", record)
    assert responses == ["utter_handoff_queued"]
    assert len([s for s in statements if "staff_accounts" in s]) == 1
