"""What every action shares: the shop services, running them off the event
loop, and a polite answer when the database is down."""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Awaitable, Callable, Dict, List, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from kefu.db.engine import DatabaseError
from kefu.shop.service import ConversationRecords, OrderService, ProductService

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def order_service() -> OrderService:
    return OrderService()


@functools.lru_cache(maxsize=1)
def product_service() -> ProductService:
    return ProductService()


@functools.lru_cache(maxsize=1)
def records() -> ConversationRecords:
    return ConversationRecords()


@functools.lru_cache(maxsize=1)
def console_store():
    """The agent console's records (who is available, who served a conversation)."""
    from kefu.console.store import ConsoleStore

    return ConsoleStore()


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking shop call in a worker thread: each call opens its own
    short session, and the action server's event loop stays free."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def shop_errors_answered(run: Callable[..., Awaitable[List[Dict[Text, Any]]]]):
    """Decorates Action.run: a database failure becomes an apology to the
    customer and one log line for the operator, never a stack trace in chat."""

    @functools.wraps(run)
    async def wrapper(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]):
        try:
            return await run(self, dispatcher, tracker, domain)
        except DatabaseError as exc:
            logger.error("%s: shop database unavailable for conversation %s: %s", self.name(), tracker.sender_id, exc)
            dispatcher.utter_message(response="utter_service_unavailable")
            return []

    return wrapper


def metadata(tracker: Tracker) -> Dict[Text, Any]:
    latest = tracker.latest_message or {}
    return latest.get("metadata") or {}


def latest_intent(tracker: Tracker) -> str:
    return ((tracker.latest_message or {}).get("intent") or {}).get("name") or ""


def latest_entity(tracker: Tracker, entity: str) -> Any:
    return next(tracker.get_latest_entity_values(entity), None)


def latest_text(tracker: Tracker) -> str:
    return ((tracker.latest_message or {}).get("text") or "").strip()
