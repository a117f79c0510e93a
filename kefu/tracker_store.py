"""Tracker stores that never keep a bank card or ID number.

The customer's message reaches the tracker before any NLU component can
change it, so masking happens where the conversation is stored: these
stores mask user texts (and their parse data) before every save. Configure
one in endpoints.yml, for example::

    tracker_store:
      type: kefu.tracker_store.MaskingSQLTrackerStore
      dialect: postgresql
      ...
"""
from __future__ import annotations

from typing import Any

from rasa.core.tracker_store import InMemoryTrackerStore, RedisTrackerStore, SQLTrackerStore
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from kefu import rasa_speedups
from kefu.shop.privacy import contains_sensitive, mask_sensitive

rasa_speedups.install()


def mask_tracker(tracker: DialogueStateTracker) -> None:
    for event in tracker.events:
        if isinstance(event, UserUttered) and event.text and contains_sensitive(event.text):
            event.text = mask_sensitive(event.text)
            parse_data: dict[str, Any] = getattr(event, "parse_data", None) or {}
            if isinstance(parse_data.get("text"), str):
                parse_data["text"] = mask_sensitive(parse_data["text"])
    latest = tracker.latest_message
    if latest is not None and latest.text and contains_sensitive(latest.text):
        latest.text = mask_sensitive(latest.text)


class MaskingInMemoryTrackerStore(InMemoryTrackerStore):
    async def save(self, tracker: DialogueStateTracker) -> None:
        mask_tracker(tracker)
        await super().save(tracker)


class MaskingSQLTrackerStore(SQLTrackerStore):
    async def save(self, tracker: DialogueStateTracker) -> None:
        mask_tracker(tracker)
        await super().save(tracker)


class MaskingRedisTrackerStore(RedisTrackerStore):
    async def save(self, tracker: DialogueStateTracker) -> None:
        mask_tracker(tracker)
        await super().save(tracker)
