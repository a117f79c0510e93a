"""REST and socket.io channels that take nobody's word for who they are.

Rasa's own channels pass on whatever a client writes: any sender id (so
anyone could continue a conversation whose id they guessed or saw), any
`input_channel` and any metadata (a WeChat openid, say). These:

* accept a sender id only with its session token (kefu.shop.tokens: the
  chat page gets both from `POST /api/session` of `python -m kefu.web`, a
  shop's site signs them with KEFU_TOKEN_SECRET); without a configured
  secret every message is refused;
* refuse sender ids of the WeChat channel (`wechat-…`);
* drop the metadata keys only the server may set (the WeChat identity) and
  name themselves as the input channel;
* socket.io: a client joins a session's room (and hears its answers) only
  with the session token: `session_request` with `{"session_id",
  "session_token"}`.

Configured in credentials.yml under their class names; the REST one keeps
the URL /webhooks/rest/webhook.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.channels.socketio import SocketIOInput
from sanic.exceptions import Forbidden
from sanic.request import Request

from kefu.shop import tokens
from kefu.shop.privacy import mask_sensitive

logger = logging.getLogger(__name__)

RESERVED_SENDER_PREFIXES = ("wechat-",)
MAX_SENDER_CHARS = 128


def sender_refusal(sender_id: object, metadata: object) -> str | None:
    """Why a message from a web client must be refused, or None."""
    if not isinstance(sender_id, str) or not sender_id or len(sender_id) > MAX_SENDER_CHARS:
        return "missing or malformed sender id"
    if sender_id.startswith(RESERVED_SENDER_PREFIXES):
        return "sender id reserved for another channel"
    token = metadata.get(tokens.SESSION_METADATA_KEY) if isinstance(metadata, dict) else None
    if not tokens.verify_session_token(sender_id, token):
        return "sender id without a valid session token"
    return None


def client_metadata(metadata: object) -> dict[str, Any]:
    """The client's metadata without the keys only the server may set."""
    if not isinstance(metadata, dict):
        return {}
    return {key: value for key, value in metadata.items() if key not in tokens.SERVER_ONLY_METADATA_KEYS}


def failures_logged_masked(
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
) -> Callable[[UserMessage], Awaitable[Any]]:
    """`on_new_message` whose failures and timeouts are logged here, with
    the text masked: Rasa's REST handler would log the whole text."""

    async def handle(message: UserMessage) -> Any:
        try:
            return await on_new_message(message)
        except asyncio.CancelledError:
            logger.error("rest: the message from %s timed out", message.sender_id)
        except Exception:  # noqa: BLE001 - answered with what was collected, as Rasa does
            logger.exception(
                "rest: the message from %s failed: %s", message.sender_id, mask_sensitive(message.text or "")
            )
        return None

    return handle


class VerifiedRestInput(RestInput):
    @classmethod
    def name(cls) -> str:
        return "rest"

    async def _extract_sender(self, req: Request) -> str | None:
        body = req.json if isinstance(req.json, dict) else {}
        sender_id = body.get("sender")
        refusal = sender_refusal(sender_id, body.get("metadata"))
        if refusal:
            logger.warning("rest: message refused from %s: %s", req.ip, refusal)
            raise Forbidden(refusal)
        return sender_id

    def _extract_input_channel(self, req: Request) -> str:
        return self.name()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Any:
        return super().blueprint(failures_logged_masked(on_new_message))

    def get_metadata(self, request: Request) -> dict[str, Any] | None:
        return client_metadata(request.json.get("metadata"))


class VerifiedSocketIOInput(SocketIOInput):
    """Rasa's socket.io channel; each message is checked before the bot sees it."""

    @classmethod
    def name(cls) -> str:
        return "socketio"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]):
        async def checked(message: UserMessage) -> Any:
            refusal = sender_refusal(message.sender_id, message.metadata)
            if refusal:
                logger.warning("socketio: message refused: %s", refusal)
                return None
            message.metadata = client_metadata(message.metadata)
            message.input_channel = self.name()
            return await on_new_message(message)

        webhook = super().blueprint(checked)
        sio = webhook.ctx.sio

        # Replaces Rasa's handler, which lets a client join any session's
        # room (and so read its answers) and, with the pinned python-socketio,
        # never awaits the join, so no answer reached anyone.
        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: dict | None) -> None:
            data = data if isinstance(data, dict) else {}
            session_id = data.get("session_id")
            refusal = sender_refusal(session_id, {tokens.SESSION_METADATA_KEY: data.get(tokens.SESSION_METADATA_KEY)})
            if refusal:
                logger.warning("socketio: session request refused: %s", refusal)
                await sio.emit("session_refused", refusal, room=sid)
                return
            if self.session_persistence:
                joined = sio.enter_room(sid, session_id, namespace=self.namespace)
                if inspect.isawaitable(joined):
                    await joined
            await sio.emit("session_confirm", session_id, room=sid)

        return webhook
