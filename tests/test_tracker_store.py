"""The event-log tracker stores: what is stored and read back (current
session, all sessions, masked card numbers), append-only writes, and when a
live tracker may be handed out again. Each test runs on the in-memory log,
on a SQLite file and on the loopback Redis (skipped, with the reason, when
Redis does not answer)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from kefu.sqlite_event_log import MaskingSQLiteTrackerStore
from kefu.tracker_store import MaskingInMemoryTrackerStore, MaskingRedisTrackerStore

REDIS_URL = os.environ.get("KEFU_TEST_REDIS_HOST", "127.0.0.1")
DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet, query_order]
slots:
  order_no:
    type: text
    mappings: [{type: custom}]
responses:
  utter_greet: [{text: 您好}]
""")


def run(coroutine):
    return asyncio.run(coroutine)


def _redis_store(**kwargs):
    import redis

    client = redis.StrictRedis(host=REDIS_URL, port=6379, db=15, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: skip, with the reason
        pytest.skip(f"Redis not reachable at {REDIS_URL}:6379: {exc}")
    prefix = f"test{uuid.uuid4().hex[:8]}"
    store = MaskingRedisTrackerStore(DOMAIN, host=REDIS_URL, db=15, key_prefix=prefix, **kwargs)
    store._test_cleanup = lambda: [client.delete(k) for k in client.scan_iter(match=f"{prefix}:*")]
    return store


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request, tmp_path):
    made = []

    def factory(**kwargs):
        if request.param == "memory":
            store = MaskingInMemoryTrackerStore(DOMAIN, **kwargs)
        elif request.param == "sqlite":
            # Every store of a test on the same file, each with its own
            # connection, as several Rasa processes would be.
            store = MaskingSQLiteTrackerStore(DOMAIN, db=str(tmp_path / "conversations.sqlite3"), **kwargs)
        else:
            store = _redis_store(**kwargs)
        made.append(store)
        return store

    yield factory
    for store in made:
        getattr(store, "_test_cleanup", lambda: None)()


def two_stores_sharing_a_log(make_store):
    """Two stores over one log, as two Rasa workers over one Redis."""
    first = make_store()
    second = make_store()
    second.event_log = first.event_log
    return first, second


def turn(tracker: DialogueStateTracker, text: str, order_no: str | None = None) -> None:
    tracker.update(UserUttered(text, {"name": "query_order", "confidence": 1.0}))
    if order_no:
        tracker.update(SlotSet("order_no", order_no))
    tracker.update(ActionExecuted("utter_greet"))
    tracker.update(BotUttered("您好"))
    tracker.update(ActionExecuted("action_listen"))


def new_conversation(store, sender: str) -> DialogueStateTracker:
    tracker = run(store.get_or_create_tracker(sender))
    tracker.update(ActionExecuted("action_session_start"))
    tracker.update(SessionStarted())
    tracker.update(ActionExecuted("action_listen"))
    return tracker


def stored_texts(store, sender):
    return store.event_log.read(sender, current_session=False).texts


def test_a_conversation_is_stored_and_read_back(make_store):
    store = make_store()
    tracker = new_conversation(store, "alice")
    turn(tracker, "查订单", "2026000000000001")
    run(store.save(tracker))
    store._live.clear()  # read it from the log, as a fresh process would
    again = run(store.retrieve("alice"))
    assert again is not tracker
    # action_listen and action_session_start came before the session began.
    assert list(again.events) == list(tracker.events)[2:]
    assert list(run(store.retrieve_full_tracker("alice")).events) == list(tracker.events)
    assert again.get_slot("order_no") == "2026000000000001"
    assert again.latest_message.text == "查订单"


def test_only_new_events_are_appended(make_store):
    store = make_store()
    tracker = new_conversation(store, "bob")
    turn(tracker, "你好")
    run(store.save(tracker))
    before = stored_texts(store, "bob")
    tracker = run(store.retrieve("bob"))
    turn(tracker, "谢谢")
    run(store.save(tracker))
    after = stored_texts(store, "bob")
    assert after[: len(before)] == before
    assert len(after) == len(before) + 4


def test_card_numbers_are_masked_before_they_are_stored(make_store):
    store = make_store()
    tracker = new_conversation(store, "carol")
    turn(tracker, "我的卡号是6222021234567890128")
    run(store.save(tracker))
    stored = "".join(stored_texts(store, "carol"))
    assert "6222021234567890128" not in stored
    assert "6222***********0128" in stored
    assert tracker.latest_message.text == "我的卡号是6222***********0128"


def test_a_returning_customer_is_read_from_the_last_session_only(make_store):
    store = make_store()
    tracker = new_conversation(store, "dave")
    for _ in range(20):
        turn(tracker, "你好")
    run(store.save(tracker))
    tracker = run(store.retrieve("dave"))
    tracker.update(ActionExecuted("action_session_start"))
    tracker.update(SessionStarted())
    tracker.update(ActionExecuted("action_listen"))
    turn(tracker, "又来了")
    run(store.save(tracker))

    current = run(store.retrieve("dave"))
    assert isinstance(current.events[0], SessionStarted)
    assert len(current.events) == 6
    # `tracker` was read from the first session's start: two events before it.
    full = run(store.retrieve_full_tracker("dave"))
    assert len(full.events) == len(tracker.events) + 2
    # A turn on the current session appends after everything stored.
    turn(current, "再见")
    run(store.save(current))
    assert len(stored_texts(store, "dave")) == len(tracker.events) + 2 + 4


def test_an_unchanged_conversation_hands_out_the_live_tracker(make_store):
    store = make_store()
    run(store.save(new_conversation(store, "erin")))
    # The first turn began the session: the next read is of that session only.
    tracker = run(store.retrieve("erin"))
    assert isinstance(tracker.events[0], SessionStarted)
    turn(tracker, "你好")
    run(store.save(tracker))
    assert run(store.retrieve("erin")) is tracker


def test_a_tracker_changed_but_not_saved_is_not_handed_out(make_store):
    store = make_store()
    run(store.save(new_conversation(store, "frank")))
    tracker = run(store.retrieve("frank"))
    run(store.save(tracker))
    assert run(store.retrieve("frank")) is tracker
    turn(tracker, "半路出错的一轮")  # a turn that failed before it was saved
    again = run(store.retrieve("frank"))
    assert again is not tracker
    assert len(again.events) == len(tracker.events) - 4


def test_a_conversation_written_by_another_worker_is_read_again(make_store):
    worker_a, worker_b = two_stores_sharing_a_log(make_store)
    run(worker_a.save(new_conversation(worker_a, "grace")))
    tracker = run(worker_a.retrieve("grace"))
    run(worker_a.save(tracker))
    assert run(worker_a.retrieve("grace")) is tracker
    on_b = run(worker_b.retrieve("grace"))
    turn(on_b, "在另一个进程")
    run(worker_b.save(on_b))
    on_a = run(worker_a.retrieve("grace"))
    assert on_a is not tracker
    assert on_a.latest_message.text == "在另一个进程"


def test_a_tracker_not_read_from_the_store_replaces_the_conversation(make_store):
    store = make_store()
    tracker = new_conversation(store, "heidi")
    turn(tracker, "你好")
    run(store.save(tracker))
    replacement = DialogueStateTracker.from_events("heidi", [ActionExecuted("action_listen")], slots=DOMAIN.slots)
    run(store.save(replacement))
    assert stored_texts(store, "heidi") == [stored_texts(store, "heidi")[0]]
    assert len(run(store.retrieve("heidi")).events) == 1


def test_the_live_tracker_cache_is_bounded(make_store):
    store = make_store(live_trackers=2)
    for sender in ("a", "b", "c"):
        run(store.save(new_conversation(store, sender)))
        run(store.save(run(store.retrieve(sender))))
    assert list(store._live) == ["b", "c"]
    assert sorted(run(store.keys())) == ["a", "b", "c"]


def test_a_live_tracker_idle_too_long_is_dropped_and_read_again(make_store):
    now = [0.0]
    store = make_store(live_seconds=60, clock=lambda: now[0])
    run(store.save(new_conversation(store, "ann")))
    tracker = run(store.retrieve("ann"))
    run(store.save(tracker))
    now[0] = 59.0
    assert run(store.retrieve("ann")) is tracker  # within the minute: handed out again
    now[0] = 59.0 + 61.0
    again = run(store.retrieve("ann"))
    assert again is not tracker  # idle too long: read from the store
    assert list(again.events) == list(tracker.events)
    # A save by another conversation also lets go of the idle ones.
    now[0] += 61.0
    run(store.save(new_conversation(store, "bob")))
    run(store.save(run(store.retrieve("bob"))))
    assert list(store._live) == ["bob"]


def sqlite_store(path):
    return MaskingSQLiteTrackerStore(DOMAIN, db=str(path))


def test_a_sqlite_conversation_survives_a_new_process(tmp_path):
    first = sqlite_store(tmp_path / "c.sqlite3")
    tracker = new_conversation(first, "ivan")
    turn(tracker, "查订单", "2026000000000001")
    run(first.save(tracker))
    first.event_log.close()
    restarted = sqlite_store(tmp_path / "c.sqlite3")
    again = run(restarted.retrieve("ivan"))
    assert again.get_slot("order_no") == "2026000000000001"
    assert list(again.events) == list(tracker.events)[2:]


def test_sqlite_appends_from_several_connections_lose_and_double_nothing(tmp_path):
    """Four writers (as four processes: a connection each) append to the same
    conversations at once: every event is stored once, in one order."""
    import threading

    from kefu.sqlite_event_log import SQLiteEventLog

    path = tmp_path / "c.sqlite3"
    logs = [SQLiteEventLog(path) for _ in range(4)]

    def writer(index: int) -> None:
        for n in range(50):
            logs[index].append(f"shared-{n % 3}", [f'"{index}-{n}-a"', f'"{index}-{n}-b"'], None)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = [text for n in range(3) for text in logs[0].read(f"shared-{n}", current_session=False).texts]
    assert sorted(stored) == sorted(f'"{i}-{n}-{part}"' for i in range(4) for n in range(50) for part in "ab")
    for n in range(3):
        texts = logs[0].read(f"shared-{n}", current_session=False).texts
        # The two events of one append stay together.
        assert all(texts[k][:-2] == texts[k + 1][:-2] for k in range(0, len(texts), 2))
        assert logs[0].version(f"shared-{n}") == len(texts) // 2


from kefu.testing import CARD, DISGUISED, sensitive_leaks  # noqa: E402 - the masking cases


@pytest.mark.parametrize("text", DISGUISED)
def test_disguised_numbers_are_masked_in_text_slots_metadata_and_bot_replies(make_store, text):
    store = make_store()
    tracker = new_conversation(store, "erin")
    tracker.update(
        UserUttered(
            f"卡号是{text}",
            {"name": "query_order", "confidence": 1.0},
            parse_data={"text": f"卡号是{text}", "kefu_raw_text": text},
            metadata={"note": text},
        )
    )
    tracker.update(SlotSet("order_no", text))
    tracker.update(BotUttered(f"您说的是{text}吗", data={"custom": {"echo": text}}))
    run(store.save(tracker))
    stored = "".join(stored_texts(store, "erin"))
    assert sensitive_leaks(text), "the input itself must be a long number"
    assert sensitive_leaks(stored) == [], stored


def test_the_first_save_reaches_the_event_broker_masked(make_store):
    class Broker:
        def __init__(self):
            self.published = []

        def publish(self, event):
            self.published.append(event)

    broker = Broker()
    store = make_store()
    store.event_broker = broker
    tracker = new_conversation(store, "frank")
    turn(tracker, f"我的卡号是{CARD}")
    run(store.save(tracker))  # a new conversation: the whole tracker is written
    tracker = run(store.retrieve("frank"))
    turn(tracker, f"还有这张 {DISGUISED[1]}")
    run(store.save(tracker))  # then only the new events
    published = json.dumps(broker.published, ensure_ascii=False)
    assert "user" in published and sensitive_leaks(published) == []


def test_the_in_memory_store_forgets_idle_conversations_and_stays_bounded():
    from kefu.tracker_store import MemoryEventLog

    now = [1000.0]
    log = MemoryEventLog(max_conversations=3, idle_seconds=600, clock=lambda: now[0])
    for sender in ("a", "b", "c"):
        log.replace(sender, ["{}"], 0)
    now[0] += 300
    log.append("a", ["{}"], None)  # a is in use; b and c are idle
    log.replace("d", ["{}"], 0)  # the fourth pushes out the least recently used
    assert sorted(log.senders()) == ["a", "c", "d"]
    now[0] += 301  # c now idle for 601 s
    assert log.read("c", current_session=True) is None
    assert log.read("a", current_session=True).texts == ["{}", "{}"]
    now[0] += 601
    log.replace("e", ["{}"], 0)
    assert log.senders() == ["e"]
