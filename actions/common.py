"""What every action shares: the shop services, running them off the event
loop within a deadline, and one polite answer to any failure."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from kefu.console.store import ConsoleStore
from kefu.shop.errors import ShopUnavailable
from kefu.shop.repository import ShopRepository, get_repository
from kefu.shop.service import ConversationRecords, OrderService, ProductService

logger = logging.getLogger(__name__)

# A shop call that takes longer than this is abandoned and the customer gets
# the apology: Rasa's own wait for the action server is far longer, and the
# answer must reach the customer within 10 s.
SHOP_CALL_DEADLINE_SECONDS = 8.0

T = TypeVar("T")


@dataclass(frozen=True)
class Services:
    orders: OrderService
    products: ProductService
    records: ConversationRecords
    # The agent console's records (who is available, who served); None where
    # a shop runs without the console (and in the fast tests).
    console: ConsoleStore | None = None

    @classmethod
    def over(cls, repository: ShopRepository, console: ConsoleStore | None = None) -> Services:
        return cls(OrderService(repository), ProductService(repository), ConversationRecords(repository), console)


_services: Services | None = None


def services() -> Services:
    """The services over the configured repository (KEFU_REPOSITORY or SQL)
    and the console's records in Kefu's own database, made on first use."""
    global _services
    if _services is None:
        _services = Services.over(get_repository(), ConsoleStore())
    return _services


def use_services(replacement: Services | None) -> None:
    """Replace the services (tests: over an in-memory repository); None goes
    back to the configured ones."""
    global _services
    _services = replacement


def order_service() -> OrderService:
    return services().orders


def product_service() -> ProductService:
    return services().products


def records() -> ConversationRecords:
    return services().records


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking shop call in a worker thread (each call opens its own
    short session, and the event loop stays free), within the deadline."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), SHOP_CALL_DEADLINE_SECONDS)
    except asyncio.TimeoutError:
        raise ShopUnavailable(f"{getattr(fn, '__qualname__', fn)} took over {SHOP_CALL_DEADLINE_SECONDS} s") from None


Run = Callable[..., Awaitable[list[dict[str, Any]]]]


def failures_answered(run: Run) -> Run:
    """Decorates an action's (or a form validation's) run: any failure, the
    shop being unavailable above all, becomes one apology to the customer and
    one log line for the operator; never silence, never a stack trace in chat,
    and never the tracker in the log."""

    @functools.wraps(run)
    async def wrapper(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]):
        try:
            return await run(self, dispatcher, tracker, domain)
        except ShopUnavailable as exc:
            logger.error("%s: shop unavailable for conversation %s: %s", self.name(), tracker.sender_id, exc)
        except Exception as exc:  # noqa: BLE001 - the customer must get an answer whatever broke
            logger.error(
                "%s failed for conversation %s: %s: %s",
                self.name(),
                tracker.sender_id,
                type(exc).__name__,
                str(exc).splitlines()[0][:200] if str(exc) else "",
                exc_info=False,
            )
            logger.debug("traceback", exc_info=True)
        dispatcher.utter_message(response="utter_service_unavailable")
        return []

    return wrapper


def metadata(tracker: Tracker) -> dict[str, Any]:
    latest = tracker.latest_message or {}
    return latest.get("metadata") or {}


def latest_intent(tracker: Tracker) -> str:
    return ((tracker.latest_message or {}).get("intent") or {}).get("name") or ""


def latest_entity(tracker: Tracker, entity: str) -> Any:
    return next(tracker.get_latest_entity_values(entity), None)


def latest_text(tracker: Tracker) -> str:
    return ((tracker.latest_message or {}).get("text") or "").strip()
