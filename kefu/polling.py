"""The background loops of `kefu.web` (the console's watcher, the notice
relay): one tick every few seconds, outliving any one failed tick."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kefu.db.engine import DatabaseError

logger = logging.getLogger(__name__)


async def tick_forever(tick: Callable[[], Awaitable[None]], seconds: float, what: str) -> None:
    while True:
        try:
            await tick()
        except DatabaseError as exc:
            logger.error("%s: shop database unavailable: %s", what, exc)
        except Exception:  # noqa: BLE001 - the loop must outlive one bad tick
            logger.exception("%s: tick failed", what)
        await asyncio.sleep(seconds)
