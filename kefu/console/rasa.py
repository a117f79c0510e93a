"""Calls to Rasa's HTTP API (`rasa run --enable-api`) for the agent console.

Taking over pauses the conversation with Rasa's own ConversationPaused event
(while paused Rasa predicts nothing, whichever worker receives the message);
handing back appends ConversationResumed. What the agent says is appended as
`bot` events so the tracker keeps the whole conversation.
"""

from __future__ import annotations

import asyncio
import logging
import os
from urllib.parse import quote

import aiohttp

logger = logging.getLogger(__name__)

# Sent by the console through Rasa (text in domain/social.yml).
HANDBACK_RESPONSE = "utter_handback"
ASK_RATING_RESPONSE = "utter_ask_rating"
STILL_WAITING_RESPONSE = "utter_handoff_still_waiting"


class RasaUnavailable(RuntimeError):
    """Rasa's HTTP API did not answer as expected."""


class RasaClient:
    def __init__(self, base_url: str, auth_token: str | None = None, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.auth_token = auth_token if auth_token is not None else os.environ.get("RASA_AUTH_TOKEN") or None
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def _call(self, method: str, path: str, payload: object | None = None, **params: str) -> object:
        if self.auth_token:
            params["token"] = self.auth_token
        url = f"{self.base_url}{path}"
        try:
            async with self._http().request(method, url, json=payload, params=params) as response:
                if response.status >= 400:
                    body = (await response.text())[:300]
                    raise RasaUnavailable(f"{method} {path}: HTTP {response.status} {body}")
                return await response.json(content_type=None)
        # On Python 3.10 aiohttp's time-out is asyncio.TimeoutError, not the
        # built-in TimeoutError (they are one class from 3.11 on).
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RasaUnavailable(f"{method} {path}: {exc.__class__.__name__} {exc}") from exc

    @staticmethod
    def _conversation(conversation_id: str) -> str:
        return f"/conversations/{quote(conversation_id, safe='')}"

    async def tracker(self, conversation_id: str) -> dict:
        result = await self._call(
            "GET", self._conversation(conversation_id) + "/tracker", include_events="AFTER_RESTART"
        )
        return result if isinstance(result, dict) else {}

    async def append_events(self, conversation_id: str, events: list[dict]) -> None:
        await self._call("POST", self._conversation(conversation_id) + "/tracker/events", events)

    async def pause(self, conversation_id: str) -> None:
        await self.append_events(conversation_id, [{"event": "pause"}])

    async def resume(self, conversation_id: str) -> None:
        await self.append_events(conversation_id, [{"event": "resume"}])

    async def say_as_agent(self, conversation_id: str, text: str, agent: str) -> None:
        await self.append_events(conversation_id, [{"event": "bot", "text": text, "metadata": {"kefu_agent": agent}}])

    async def send_response(self, conversation_id: str, response: str) -> list[dict]:
        """Run one of the domain's responses in the conversation; its messages.

        Rasa's /execute runs only that action (no prediction after it); the
        action_listen appended after it leaves the conversation as after any
        bot turn, so the next message is understood in context."""
        result = await self._call(
            "POST", self._conversation(conversation_id) + "/execute", {"name": response}, include_events="NONE"
        )
        await self.append_events(conversation_id, [{"event": "action", "name": "action_listen"}])
        messages = (result or {}).get("messages") if isinstance(result, dict) else None
        return [m for m in messages or [] if isinstance(m, dict)]


def transcript(tracker: dict) -> list[dict]:
    """User and bot turns of a tracker, oldest first, as the console shows them."""
    lines = []
    for event in tracker.get("events") or []:
        kind = event.get("event")
        if kind == "user":
            text = event.get("text") or ""
            if text.startswith("/"):
                continue  # a button's payload, e.g. /greet: not something the customer typed
            lines.append({"who": "customer", "text": text, "t": event.get("timestamp")})
        elif kind == "bot":
            agent = (event.get("metadata") or {}).get("kefu_agent")
            text = event.get("text") or ""
            if not text and (event.get("data") or {}).get("custom"):
                text = "[卡片]"
            if text:
                lines.append(
                    {"who": "agent" if agent else "bot", "agent": agent, "text": text, "t": event.get("timestamp")}
                )
    return lines


def verified_customer(tracker: dict) -> int | None:
    """The customer this conversation is proven to be, as the bot would accept it:
    the verified slot, a signed customer token the page sent (a logged-in
    customer who only asked for a person), or an openid the WeChat channel
    itself vouched for and the shop bound to a customer. Blocking (the openid
    look-up reads the database): call it off the event loop."""
    value = (tracker.get("slots") or {}).get("customer_id")
    try:
        if value is not None:
            return int(value)
    except (TypeError, ValueError):
        pass
    from kefu.shop.tokens import verify_customer_token

    for event in reversed(tracker.get("events") or []):
        if event.get("event") != "user":
            continue
        metadata = event.get("metadata") or {}
        customer_id = verify_customer_token(metadata.get("customer_token"))
        if customer_id is not None:
            return customer_id
        if event.get("input_channel") == "wechat" and metadata.get("wechat_openid"):
            from kefu.shop.repository import get_repository

            customer = get_repository().customer_by_openid(str(metadata["wechat_openid"]))
            return customer.id if customer else None
        return None  # only the latest message counts, as for the bot
    return None


def is_paused(tracker: dict) -> bool:
    return bool(tracker.get("paused"))
