"""Tracker stores that never keep a bank card or ID number, and whose cost
per turn does not grow with the stored conversation.

The customer's message reaches the tracker before any NLU component can
change it, so masking happens where the conversation is stored: user texts
(and their parse data) are masked before they are saved.

Rasa's own in-memory and Redis stores keep a conversation as one JSON
document: every turn deserialises all of it (every earlier session too) and
serialises it again, the Redis store even twice to merge. Ours keep an
append-only log of events, one JSON text per event, with the position of
the last `session_started`:

* `retrieve` reads the current session only (what Rasa's SQL store does);
  `retrieve_full_tracker` reads everything;
* `save` appends only the events the tracker gained since it was read;
* each Rasa process keeps the trackers of its recent conversations alive
  and hands one out again when the stored log has not changed since
  (checked with a version counter: one Redis round trip instead of
  deserialising the session). With several Sanic workers a conversation
  that moves to another worker is simply read from Redis there. At most
  `live_trackers` are kept, each for `live_seconds` after its last turn:
  one costs about 100 KB, and 1000 kept without a time limit grew a Rasa
  process by about 96 MB in a soak for no measurable CPU saving
  (BENCHMARKS.md, "Memory soak").

A tracker that was not read from this store (a new conversation, or one
replaced through the HTTP API) replaces the stored log, as Rasa's stores do.

Configure one in endpoints.yml, for example::

    tracker_store:
      type: kefu.tracker_store.MaskingRedisTrackerStore
      url: localhost
      port: 6379
      db: 0
      live_trackers: 200    # default
      live_seconds: 120     # default
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.conversation import Dialogue
from rasa.shared.core.events import BotUttered, Event, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from kefu.shop.privacy import contains_sensitive, mask_in_place, mask_sensitive

logger = logging.getLogger(__name__)

DEFAULT_LIVE_TRACKERS = 200
DEFAULT_LIVE_SECONDS = 120.0
# The in-memory store's bounds (endpoints.yml: max_conversations, idle_seconds).
DEFAULT_MAX_CONVERSATIONS = 10000
DEFAULT_IDLE_SECONDS = 24 * 3600


def mask_events(events: Iterable[Event]) -> None:
    """Masks, in place, every string a bank card or ID number could reach:
    the text, the parse result, entities, metadata, slot values and what the
    bot said back."""
    for event in events:
        if isinstance(event, UserUttered):
            event.text = mask_in_place(event.text)
            mask_in_place(event.entities)
            mask_in_place(getattr(event, "parse_data", None))
        elif isinstance(event, SlotSet):
            event.value = mask_in_place(event.value)
        elif isinstance(event, BotUttered):
            event.text = mask_in_place(event.text)
            mask_in_place(event.data)
        mask_in_place(getattr(event, "metadata", None))


def mask_tracker(tracker: DialogueStateTracker, events: Sequence[Event] | None = None) -> None:
    """Masks `events` (all of the tracker's by default) and the latest message."""
    mask_events(tracker.events if events is None else events)
    latest = tracker.latest_message
    if latest is not None and latest.text and contains_sensitive(latest.text):
        latest.text = mask_sensitive(latest.text)


@dataclass(frozen=True)
class StoredLog:
    version: int
    offset: int  # position in the log of the first event read
    texts: list[str]


@dataclass(frozen=True)
class _ReadMark:
    """Remembered on a tracker read from the store: what of it is stored."""

    version: int
    offset: int
    stored_events: int
    current_session: bool


class EventLog:
    """One conversation's events as JSON texts, with a version counter that
    changes on every write and the position of the last session start."""

    def version(self, sender_id: str) -> int | None:
        raise NotImplementedError

    def read(self, sender_id: str, current_session: bool) -> StoredLog | None:
        raise NotImplementedError

    def append(self, sender_id: str, texts: list[str], session_start: int | None) -> tuple[int, int]:
        """Appends; returns (new version, length before the append)."""
        raise NotImplementedError

    def replace(self, sender_id: str, texts: list[str], session_start: int) -> int:
        raise NotImplementedError

    def senders(self) -> list[str]:
        raise NotImplementedError


class MemoryEventLog(EventLog):
    """Bounded: a conversation idle for `idle_seconds` is forgotten, and the
    least recently used go first beyond `max_conversations`, so a flood of
    new sender ids cannot fill the memory."""

    def __init__(
        self,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # sender -> (version, session start, texts, last used); least recently used first.
        self._logs: OrderedDict[str, tuple[int, int, list[str], float]] = OrderedDict()
        self._max_conversations = max(1, int(max_conversations))
        self._idle_seconds = float(idle_seconds)
        self._clock = clock

    def _get(self, sender_id: str) -> tuple[int, int, list[str], float] | None:
        stored = self._logs.get(sender_id)
        if stored is not None and self._clock() - stored[3] > self._idle_seconds:
            del self._logs[sender_id]
            return None
        return stored

    def _put(self, sender_id: str, version: int, session_start: int, texts: list[str]) -> None:
        now = self._clock()
        self._logs[sender_id] = (version, session_start, texts, now)
        self._logs.move_to_end(sender_id)
        while self._logs:
            oldest = next(iter(self._logs.values()))
            if len(self._logs) <= self._max_conversations and now - oldest[3] <= self._idle_seconds:
                break
            self._logs.popitem(last=False)

    def version(self, sender_id: str) -> int | None:
        stored = self._get(sender_id)
        return stored[0] if stored else None

    def read(self, sender_id: str, current_session: bool) -> StoredLog | None:
        stored = self._get(sender_id)
        if stored is None:
            return None
        version, session_start, texts, _ = stored
        offset = session_start if current_session else 0
        return StoredLog(version, offset, texts[offset:])

    def append(self, sender_id, texts, session_start):
        version, old_start, stored, _ = self._get(sender_id) or (0, 0, [], 0.0)
        length_before = len(stored)
        stored.extend(texts)
        self._put(sender_id, version + 1, old_start if session_start is None else session_start, stored)
        return version + 1, length_before

    def replace(self, sender_id, texts, session_start):
        version = (self._get(sender_id) or (0,))[0] + 1
        self._put(sender_id, version, session_start, list(texts))
        return version

    def senders(self) -> list[str]:
        return list(self._logs)


class RedisEventLog(EventLog):
    """Over a client made with decode_responses=True.
    `{prefix}meta:{sender}` is a hash (version, session_start),
    `{prefix}events:{sender}` the list of events; both expire together when
    `record_exp` (seconds) is set."""

    _READ = """
    local meta = redis.call('HMGET', KEYS[1], 'version', 'session_start')
    if not meta[1] then return false end
    local start = 0
    if ARGV[1] == '1' and meta[2] then start = tonumber(meta[2]) end
    return {meta[1], start, redis.call('LRANGE', KEYS[2], start, -1)}
    """

    def __init__(self, client: Any, key_prefix: str, record_exp: float | None) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._expire = int(record_exp) if record_exp else None
        self._read_script = client.register_script(self._READ)

    def _keys(self, sender_id: str) -> tuple[str, str]:
        return f"{self._prefix}meta:{sender_id}", f"{self._prefix}events:{sender_id}"

    def version(self, sender_id):
        value = self._redis.hget(self._keys(sender_id)[0], "version")
        return int(value) if value is not None else None

    def read(self, sender_id, current_session):
        stored = self._read_script(keys=list(self._keys(sender_id)), args=["1" if current_session else "0"])
        if not stored:
            return None
        version, offset, texts = stored
        return StoredLog(int(version), int(offset), list(texts))

    def append(self, sender_id, texts, session_start):
        return self._write(sender_id, texts, session_start, replace=False)

    def replace(self, sender_id, texts, session_start):
        return self._write(sender_id, texts, session_start, replace=True)[0]

    def _write(self, sender_id, texts, session_start, replace: bool) -> tuple[int, int]:
        meta, events = self._keys(sender_id)
        pipe = self._redis.pipeline(transaction=True)
        if replace:
            pipe.delete(events)
        else:
            pipe.llen(events)
        if texts:
            pipe.rpush(events, *texts)
        if session_start is not None:
            pipe.hset(meta, "session_start", session_start)
        pipe.hincrby(meta, "version", 1)
        if self._expire:
            pipe.expire(meta, self._expire)
            pipe.expire(events, self._expire)
        results = pipe.execute()
        version = results[1 + bool(texts) + (session_start is not None)]
        return int(version), 0 if replace else int(results[0])

    def senders(self):
        meta_prefix = f"{self._prefix}meta:"
        return [key[len(meta_prefix) :] for key in self._redis.scan_iter(match=f"{meta_prefix}*")]


def _last_session_start(events: Sequence[Event], base: int) -> int | None:
    for index in range(len(events) - 1, -1, -1):
        if isinstance(events[index], SessionStarted):
            return base + index
    return None


class EventLogTrackerStore(TrackerStore):
    """The tracker store described in the module docstring, over any EventLog."""

    def __init__(
        self,
        domain,
        event_log: EventLog,
        event_broker=None,
        live_trackers: int = DEFAULT_LIVE_TRACKERS,
        live_seconds: float = DEFAULT_LIVE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        # Installed where Rasa loads this project's stores: deadlines and an
        # apology for action-server calls (kefu/rasa_resilience.py).
        from kefu import rasa_resilience

        rasa_resilience.install()
        self.event_log = event_log
        # sender -> (tracker, when last handed out or saved); least recently used first.
        self._live: OrderedDict[str, tuple[DialogueStateTracker, float]] = OrderedDict()
        self._live_limit = int(live_trackers)
        self._live_seconds = float(live_seconds)
        self._clock = clock
        super().__init__(domain, event_broker, **kwargs)

    # -- reading -----------------------------------------------------------
    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        kept = self._live.get(sender_id)
        if kept is not None:
            live, used = kept
            mark: _ReadMark = live._kefu_read_mark
            now = self._clock()
            # Unchanged in the store, and nothing added to it since it was saved.
            if (
                now - used <= self._live_seconds
                and mark.version == self.event_log.version(sender_id)
                and len(live.events) == mark.stored_events
            ):
                self._live[sender_id] = (live, now)
                self._live.move_to_end(sender_id)
                return live
            del self._live[sender_id]
        return self._read(sender_id, current_session=True)

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        return self._read(sender_id, current_session=False)

    def _read(self, sender_id: str, current_session: bool) -> DialogueStateTracker | None:
        stored = self.event_log.read(sender_id, current_session)
        if stored is None:
            logger.debug("no stored conversation %r", sender_id)
            return None
        events = [Event.from_parameters(json.loads(text)) for text in stored.texts]
        tracker = self.init_tracker(sender_id)
        tracker.recreate_from_dialogue(Dialogue(sender_id, events))
        tracker._kefu_read_mark = _ReadMark(stored.version, stored.offset, len(events), current_session)
        if current_session:
            self._keep_alive(tracker)
        return tracker

    def _keep_alive(self, tracker: DialogueStateTracker) -> None:
        if self._live_limit <= 0:
            return
        now = self._clock()
        self._live[tracker.sender_id] = (tracker, now)
        self._live.move_to_end(tracker.sender_id)
        # Beyond the limit, and any idle longer than live_seconds: a customer
        # who comes back later costs one read of the current session.
        while self._live and (
            len(self._live) > self._live_limit or now - next(iter(self._live.values()))[1] > self._live_seconds
        ):
            self._live.popitem(last=False)

    async def keys(self) -> Iterable[str]:
        return self.event_log.senders()

    # -- writing -----------------------------------------------------------
    async def save(self, tracker: DialogueStateTracker) -> None:
        mark: _ReadMark | None = getattr(tracker, "_kefu_read_mark", None)
        sender_id = tracker.sender_id
        if mark is None or tracker.events.maxlen is not None or len(tracker.events) < mark.stored_events:
            await self._replace(tracker)
            return
        new_events = list(itertools.islice(tracker.events, mark.stored_events, None))
        mask_tracker(tracker, new_events)
        texts = [json.dumps(event.as_dict(), ensure_ascii=False) for event in new_events]
        expected = mark.offset + mark.stored_events
        # Where a new session began among the new events, if one did.
        session_start = _last_session_start(new_events, 0)
        version, length_before = self.event_log.append(
            sender_id, texts, None if session_start is None else expected + session_start
        )
        if length_before != expected:
            # Another writer got in between (the lock store should prevent
            # it); nothing is lost: our events go after theirs.
            logger.warning(
                "conversation %r changed while a turn was running (%d stored events, expected %d)",
                sender_id,
                length_before,
                expected,
            )
        await self._publish(sender_id, new_events)
        tracker._kefu_read_mark = _ReadMark(version, mark.offset, len(tracker.events), mark.current_session)
        older_sessions_held = session_start is not None and mark.stored_events + session_start > 0
        if mark.current_session and length_before == expected and not older_sessions_held:
            self._keep_alive(tracker)
        else:
            # A new session began in this tracker (the next turn should see
            # that session only), or the log changed under us: read it again.
            self._live.pop(sender_id, None)

    async def _replace(self, tracker: DialogueStateTracker) -> None:
        # Masked before anything leaves: the event broker gets what is stored.
        mask_tracker(tracker)
        await self.stream_events(tracker)
        events = list(tracker.events)
        texts = [json.dumps(event.as_dict(), ensure_ascii=False) for event in events]
        session_start = _last_session_start(events, 0) or 0
        version = self.event_log.replace(tracker.sender_id, texts, session_start)
        self._live.pop(tracker.sender_id, None)
        if tracker.events.maxlen is None:
            # The whole log is in this tracker: it is read from offset 0.
            tracker._kefu_read_mark = _ReadMark(version, 0, len(events), session_start == 0)

    async def _publish(self, sender_id: str, events: list[Event]) -> None:
        if self.event_broker is not None and events:
            await self._stream_new_events(self.event_broker, events, sender_id)


class MaskingInMemoryTrackerStore(EventLogTrackerStore):
    """Conversations in this process's memory (lost on restart)."""

    def __init__(
        self,
        domain,
        event_broker=None,
        live_trackers: int = DEFAULT_LIVE_TRACKERS,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            domain, MemoryEventLog(max_conversations, idle_seconds), event_broker, live_trackers=live_trackers, **kwargs
        )


class MaskingRedisTrackerStore(EventLogTrackerStore):
    """Conversations in Redis, shared by every Rasa worker and process."""

    def __init__(
        self,
        domain,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        event_broker=None,
        record_exp: float | None = None,
        key_prefix: str | None = None,
        use_ssl: bool = False,
        live_trackers: int = DEFAULT_LIVE_TRACKERS,
        **kwargs: Any,
    ) -> None:
        import redis

        client = redis.StrictRedis(
            host=host,
            port=int(port),
            db=int(db),
            username=username,
            password=password,
            ssl=use_ssl,
            decode_responses=True,
        )
        prefix = f"{key_prefix}:kefu:tracker:" if key_prefix else "kefu:tracker:"
        super().__init__(
            domain, RedisEventLog(client, prefix, record_exp), event_broker, live_trackers=live_trackers, **kwargs
        )


class MaskingSQLTrackerStore(SQLTrackerStore):
    async def save(self, tracker: DialogueStateTracker) -> None:
        mask_tracker(tracker)
        await super().save(tracker)
