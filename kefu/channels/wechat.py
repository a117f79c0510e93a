"""WeChat Official Account (微信公众号) channel for Rasa.

URL: /webhooks/wechat/webhook. Configure in credentials.yml:

    kefu.channels.wechat.WeChatInput:
      token: ${WECHAT_TOKEN}
      app_id: ${WECHAT_APP_ID}
      app_secret: ${WECHAT_APP_SECRET}
      encoding_aes_key: ${WECHAT_AES_KEY}   # empty for plain mode

      redis_url: ${REDIS_URL}               # optional: else the shop database
      api_base_url: ${WECHAT_API_BASE_URL}  # optional: else https://api.weixin.qq.com/cgi-bin/

- GET: server verification (signature over token, timestamp, nonce).
- POST: text messages and subscribe/unsubscribe events, plain or AES safe
  mode. A forged or missing signature gets 403 and nothing is processed.
  Plain mode signs only token, timestamp and nonce, not the body: a
  timestamp more than 5 minutes off is refused, and a (timestamp, nonce)
  pair seen with another body is a replay and refused. AES safe mode, which
  signs the encrypted body, is the production setting.
- WeChat retries a message three times when it gets no answer in 5 s:
  messages are de-duplicated by MsgId, in a store every worker shares and
  that survives a restart (kefu.channels.wechat_state); a message counts as
  handled once it was processed, so the retry of a failed one is answered.
- The 5-second deadline: if the bot has not answered in `reply_timeout`
  seconds, the passive reply is a short holding message and the real answer
  follows through the customer-service message API (客服消息接口).
- The sender's openid goes into the message metadata (`wechat_openid`) with
  the channel's signed assertion of it (`wechat_identity`,
  kefu.shop.tokens, needs KEFU_TOKEN_SECRET): only then does an openid bound
  to a customer count as verification.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from kefu.channels.wechat_state import AccessTokenStorage, MemoryStateStore, StateStore, state_store
from kefu.shop import tokens

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# Shown by WeChat itself, before any bot runs: kept here rather than in the domain.
HOLDING_REPLY = "正在为您查询，请稍候～"
UNSUPPORTED_REPLY = "小客暂时只能看懂文字消息哦，请用文字描述您的问题～"
# WeChat's own advice for plain mode: a signed query older or newer than
# this is refused, and the nonces seen are remembered this long.
TIMESTAMP_WINDOW_SECONDS = 300
# A message being processed by some worker; a crashed worker's claim lapses.
PROCESSING_SECONDS = 60
# A handled message: longer than WeChat's retries (three within ~15 s).
HANDLED_SECONDS = 600


def escape_cdata(text: str) -> str:
    """Text safe inside <![CDATA[...]]>: a `]]>` would end the section early."""
    return text.replace("]]>", "]]]]><![CDATA[>")


def api_base_url(configured: str | None = None) -> str | None:
    """Where WeChat's API is: `api_base_url` in the credentials, else
    WECHAT_API_BASE_URL, else api.weixin.qq.com (None). A shop behind an
    egress proxy sets it; the tests point it at a recording fake."""
    url = configured or os.environ.get("WECHAT_API_BASE_URL") or ""
    return url.rstrip("/") + "/" if url else None


class CustomerServiceClient:
    """Sends a text to a follower through WeChat's customer-service message API
    (客服消息接口). The access token is kept in `session`: every process that
    sends (each Rasa worker, the console's web server) must share one, since
    fetching a new token invalidates the others' (AccessTokenStorage)."""

    def __init__(self, app_id: str, app_secret: str, session: Any = None, base_url: str | None = None):
        from wechatpy import WeChatClient

        class Client(WeChatClient):
            # wechatpy 1.8 fetches the token from a fixed api.weixin.qq.com
            # address; here it follows API_BASE_URL like every other call.
            def fetch_access_token(self):
                return self._fetch_access_token(
                    url=f"{self.API_BASE_URL}token",
                    params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
                )

        self._client = Client(app_id, app_secret, session=session)
        base_url = api_base_url(base_url)
        if base_url:
            self._client.API_BASE_URL = base_url

    async def send_text(self, openid: str, text: str) -> None:
        await asyncio.to_thread(self._client.message.send_text, openid, text)


def render_text(messages: list[dict[str, Any]]) -> str:
    """Bot messages as one WeChat text: buttons become a numbered list."""
    parts = []
    for message in messages:
        if message.get("text"):
            parts.append(message["text"])
        custom = message.get("custom") or {}
        if custom.get("type") in ("product_card", "order_card"):
            parts.append(
                f"【{custom.get('name') or custom.get('title', '')}】{custom.get('price') or custom.get('status', '')}"
            )
        buttons = message.get("buttons") or []
        if buttons:
            parts.append("\n".join(f"{i}. {b.get('title', '')}" for i, b in enumerate(buttons, start=1)))
    return "\n".join(p for p in parts if p).strip()


class WeChatInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return "wechat"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        credentials = credentials or {}
        return cls(
            token=credentials.get("token") or "",
            app_id=credentials.get("app_id") or "",
            app_secret=credentials.get("app_secret") or "",
            encoding_aes_key=credentials.get("encoding_aes_key") or "",
            reply_timeout=float(credentials.get("reply_timeout") or 4.5),
            state=state_store(credentials.get("redis_url") or None),
            api_base_url=credentials.get("api_base_url") or None,
        )

    def __init__(
        self,
        token: str,
        app_id: str = "",
        app_secret: str = "",
        encoding_aes_key: str = "",
        reply_timeout: float = 4.5,
        client: Any | None = None,
        state: StateStore | None = None,
        api_base_url: str | None = None,
    ) -> None:
        self.token = token
        self.api_base_url = api_base_url
        self.app_id = app_id
        self.encoding_aes_key = encoding_aes_key
        self.reply_timeout = reply_timeout
        self._client = client
        self._app_secret = app_secret
        self.state = state if state is not None else MemoryStateStore()
        self.pending: set = set()
        self.crypto = None
        if encoding_aes_key:
            from wechatpy.crypto import WeChatCrypto

            self.crypto = WeChatCrypto(token, encoding_aes_key, app_id)

    @property
    def client(self):
        if self._client is None:
            self._client = CustomerServiceClient(
                self.app_id, self._app_secret, session=AccessTokenStorage(self.state), base_url=self.api_base_url
            )
        return self._client

    def _signature_ok(self, request: Request) -> bool:
        """A valid signature (compared in constant time) over a fresh timestamp."""
        args = request.args
        signature, timestamp, nonce = args.get("signature"), args.get("timestamp"), args.get("nonce")
        if not (self.token and signature and timestamp and nonce) or not timestamp.isdigit():
            return False
        if abs(time.time() - int(timestamp)) > TIMESTAMP_WINDOW_SECONDS:
            logger.warning("wechat: signed query with a timestamp %s s off refused", int(time.time()) - int(timestamp))
            return False
        expected = hashlib.sha1("".join(sorted((self.token, timestamp, nonce))).encode("utf-8")).hexdigest()
        return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))

    def _replayed(self, request: Request) -> bool:
        """A signed (timestamp, nonce) seen before with another body. The
        same body again is WeChat's retry, which MsgId de-duplication answers."""
        args = request.args
        key = f"nonce:{args.get('timestamp')}:{args.get('nonce')}"
        digest = hashlib.sha256(request.body or b"").hexdigest()
        if self.state.claim(key, digest, 2 * TIMESTAMP_WINDOW_SECONDS):
            return False
        return self.state.get(key) not in (None, digest)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("wechat_webhook", type(self).__module__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            if not self._signature_ok(request):
                logger.warning("wechat: verification with a bad or missing signature refused")
                return response.text("forbidden", status=403)
            return response.text(request.args.get("echostr", ""))

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self._signature_ok(request):
                logger.warning("wechat: message with a bad or missing signature refused")
                return response.text("forbidden", status=403)
            if len(request.body or b"") > MAX_BODY_BYTES:
                return response.text("payload too large", status=413)
            if self._replayed(request):
                logger.warning("wechat: a signed query replayed with another body refused")
                return response.text("forbidden", status=403)
            try:
                message = self._parse(request)
            except Exception as exc:  # noqa: BLE001 - any undecryptable or malformed body
                logger.warning("wechat: unreadable message refused: %s", exc)
                return response.text("forbidden", status=403)
            return await self._handle(message, request, on_new_message)

        return webhook

    def _parse(self, request: Request):
        from wechatpy import parse_message

        body = request.body.decode("utf-8")
        if self.crypto is not None:
            args = request.args
            body = self.crypto.decrypt_message(
                body, args.get("msg_signature"), args.get("timestamp"), args.get("nonce")
            )
        return parse_message(body)

    def _reply(self, message, text: str, request: Request) -> HTTPResponse:
        from wechatpy.replies import TextReply

        if not text:
            return response.text("success")
        xml = TextReply(message=message, content=escape_cdata(text)).render()
        if self.crypto is not None:
            xml = self.crypto.encrypt_message(xml, request.args.get("nonce"), request.args.get("timestamp"))
        return response.text(xml, content_type="application/xml")

    async def _handle(self, message, request: Request, on_new_message) -> HTTPResponse:
        openid = message.source
        key = "msg:" + str(getattr(message, "id", None) or f"{openid}:{message.create_time}:{message.type}")
        if not self.state.claim(key, "processing", PROCESSING_SECONDS):
            logger.info("wechat: retry of message %s (%s elsewhere) ignored", key, self.state.get(key) or "handled")
            return response.text("success")
        if message.type == "event":
            event = getattr(message, "event", "")
            if event == "subscribe":
                text = "/greet"
            else:
                self._handled(key)
                return response.text("success")  # unsubscribe and others: nothing to say
        elif message.type == "text":
            text = message.content
        else:
            self._handled(key)
            return self._reply(message, UNSUPPORTED_REPLY, request)
        collector = CollectingOutputChannel()
        metadata = {tokens.OPENID_METADATA_KEY: openid}
        identity = tokens.sign_wechat_identity(openid)
        if identity:
            metadata[tokens.WECHAT_METADATA_KEY] = identity
        user_message = UserMessage(
            text, collector, sender_id=f"wechat-{openid}", input_channel=self.name(), metadata=metadata
        )
        task = asyncio.ensure_future(on_new_message(user_message))
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=self.reply_timeout)
        except asyncio.TimeoutError:
            logger.info("wechat: answer for %s not ready in %.1fs; replying later via the API", key, self.reply_timeout)
            follow_up = asyncio.ensure_future(self._send_later(task, collector, openid, key))
            self.pending.add(follow_up)
            follow_up.add_done_callback(self.pending.discard)
            return self._reply(message, HOLDING_REPLY, request)
        except Exception:
            # Not handled: WeChat's retry gets another go.
            self.state.delete(key)
            raise
        self._handled(key)
        return self._reply(message, render_text(collector.messages), request)

    def _handled(self, key: str) -> None:
        self.state.put(key, "handled", HANDLED_SECONDS)

    async def _send_later(self, task, collector: CollectingOutputChannel, openid: str, key: str) -> None:
        try:
            await task
        except Exception:  # noqa: BLE001 - logged for the operator; the customer got the holding reply
            logger.exception("wechat: message %s from %s failed after the holding reply", key, openid)
            self.state.delete(key)
            return
        self._handled(key)
        try:
            text = render_text(collector.messages)
            if text:
                await self.client.send_text(openid, text)
        except Exception:  # noqa: BLE001 - logged for the operator; the customer got the holding reply
            logger.exception("wechat: could not send the late answer to %s", openid)
