"""Serve the chat page and the agent console (客服工作台) on port 8080.

A Sanic app (Sanic comes with Rasa), one worker:

- the chat page: static files from web/, its configuration (/config.js),
  a new chat's sender id with its session token (/api/session: the REST
  channel accepts no other), the demo "logged-in" token (only when
  KEFU_DEMO_LOGIN=1 on loopback), and /api/chat/events, a server-sent-event
  stream through which an agent's replies reach the page without a reload
  (for the holder of that chat's session token only);
- the console at /console/ (kefu.console.*): login, the hand-off queue
  (live over server-sent events), take-over through Rasa's own pause,
  the customer panel, notes, tags and canned replies.

Everything is local: no CDN, so both pages work on an offline intranet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from kefu.analytics.web import register_dashboard
from kefu.console.rasa import (
    ASK_RATING_RESPONSE,
    HANDBACK_RESPONSE,
    STILL_WAITING_RESPONSE,
    RasaClient,
    RasaUnavailable,
    is_paused,
    transcript,
    verified_customer,
)
from kefu.console.store import ConsoleStore, SignedIn
from kefu.db.engine import DatabaseError, ensure_schema, utcnow
from kefu.exposure import demo_login_allowed
from kefu.faq import MAX_ANSWER_CHARS as MAX_FAQ_ANSWER_CHARS, FaqAnswerStore, domain_faq_answers
from kefu.notices.store import NoticeStore
from kefu.notices.web import NoticeRelay, notice_event, notice_topic, register_campaigns, register_notice_events
from kefu.polling import tick_forever
from kefu.shop.formatting import (
    ORDER_STATUS_ZH,
    TICKET_KIND_ZH,
    TICKET_STATUS_ZH,
    china_time,
    mask_phone,
    yuan,
)
from kefu.shop.tokens import issue_web_session, sign_customer_token, verify_customer_token, verify_session_token

WEB_ROOT = Path(__file__).resolve().parents[1] / "web"
DEMO_CUSTOMER_ID = 1  # 王小明 in the demo shop (kefu.shop.demo.SHOWCASE_CUSTOMERS)
SESSION_COOKIE = "kefu_console"
LOGIN_CSRF_COOKIE = "kefu_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
POLL_SECONDS = 1.0
MAX_REPLY_CHARS = 2000
REASON_ZH = {
    "customer_request": "顾客要求",
    "two_fallbacks": "两次未理解",
    "complaint": "投诉",
    "verification_locked": "验证锁定",
}
logger = logging.getLogger(__name__)


# --- who may listen to a chat's pushed messages -------------------------------


def may_listen(request: Request, sender: str) -> bool:
    """May this browser receive the messages pushed to conversation `sender`?
    Only with the session token this server issued for that sender id (the
    same one the REST channel asks for)."""
    return verify_session_token(sender, request.args.get("session_token", ""))


# --- in-process publish/subscribe ---------------------------------------------


class Hub:
    """Server-sent-event subscribers by topic ("console", "chat:<sender>").

    In-process: the web server runs one worker."""

    def __init__(self) -> None:
        self._topics: dict[str, set[asyncio.Queue]] = defaultdict(set)

    def subscribe(self, topic: str, queue: asyncio.Queue | None = None) -> asyncio.Queue:
        queue = queue if queue is not None else asyncio.Queue(maxsize=200)
        self._topics[topic].add(queue)
        return queue

    def unsubscribe(self, topic: str, queue: asyncio.Queue) -> None:
        self._topics[topic].discard(queue)
        if not self._topics[topic]:
            del self._topics[topic]

    def listeners(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    def publish(self, topic: str, item: dict) -> None:
        for queue in list(self._topics.get(topic, ())):
            if queue.full():
                logger.warning("dropping a slow %s subscriber", topic)
                continue
            queue.put_nowait(item)


async def stream(
    request: Request,
    hub: Hub,
    topic: str,
    *,
    first: tuple[dict, ...] | list[dict] = (),
    every_ping: Callable[[], Awaitable[None]] | None = None,
    also: tuple[str, ...] = (),
    on_sent: Callable[[dict], Awaitable[None]] | None = None,
) -> None:
    """Send `topic`'s items (and those of the topics `also`) as server-sent
    events until the browser goes away; `on_sent` hears of each item sent."""
    queue = hub.subscribe(topic)
    for other in also:
        hub.subscribe(other, queue)
    try:
        sse = await request.respond(
            content_type="text/event-stream; charset=utf-8",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        await sse.send("retry: 2000\n\n")
        for item in first:
            await sse.send(f"data: {json.dumps(item, ensure_ascii=False, default=str)}\n\n")
            if on_sent is not None:
                await on_sent(item)
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=15)
            except asyncio.TimeoutError:
                await sse.send(": ping\n\n")  # keeps proxies from closing an idle stream
                if every_ping is not None:
                    await every_ping()
                continue
            await sse.send(f"data: {json.dumps(item, ensure_ascii=False, default=str)}\n\n")
            if on_sent is not None:
                await on_sent(item)
    finally:
        hub.unsubscribe(topic, queue)
        for other in also:
            hub.unsubscribe(other, queue)


# --- customer delivery --------------------------------------------------------


class DeliveryFailed(RuntimeError):
    """A message could not be sent to a WeChat customer (it is kept in the tracker)."""


class Customers:
    """Delivers what the console sends to a customer: pushed to the chat page,
    or through WeChat's customer-service message API."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self._wechat: Any = None

    def wechat(self) -> Any:
        """The customer-service API client, made on first use (a database that
        is down when the web server starts must not stop it)."""
        if self._wechat is None:
            app_id, app_secret = os.environ.get("WECHAT_APP_ID"), os.environ.get("WECHAT_APP_SECRET")
            if not (app_id and app_secret):
                return None
            from kefu.channels.wechat import CustomerServiceClient
            from kefu.channels.wechat_state import AccessTokenStorage, state_store

            # The access token is shared with the WeChat channel's workers (the
            # same Redis as its `redis_url`, or the shop database): a token
            # fetched here must not invalidate theirs.
            tokens = AccessTokenStorage(state_store(os.environ.get("WECHAT_REDIS_URL") or None))
            self._wechat = CustomerServiceClient(app_id, app_secret, session=tokens)
        return self._wechat

    async def deliver(
        self, conversation_id: str, messages: list[dict], *, agent: str | None = None, message_id: int | None = None
    ) -> None:
        if not messages:
            return
        if conversation_id.startswith("wechat-"):
            from kefu.channels.wechat import render_text

            try:
                client = await asyncio.to_thread(self.wechat)
                if client is None:
                    logger.error(
                        "cannot reach WeChat customer %s: WECHAT_APP_ID/WECHAT_APP_SECRET not set", conversation_id
                    )
                    raise DeliveryFailed("WECHAT_APP_ID/WECHAT_APP_SECRET not set")
                await client.send_text(conversation_id[len("wechat-") :], render_text(messages))
            except DeliveryFailed:
                raise
            except Exception as exc:  # noqa: BLE001 - logged for the operator; the agent sees it too
                logger.error("WeChat customer-service message to %s failed: %s", conversation_id, exc)
                raise DeliveryFailed(str(exc)) from exc
            return
        self.hub.publish(
            f"chat:{conversation_id}", {"type": "bot", "agent": agent, "messages": messages, "id": message_id}
        )


# --- the live queue -----------------------------------------------------------


class Watcher:
    """Every second: the open hand-offs from the database, their conversations
    from Rasa; tells consoles what changed and sends the one polite update to
    customers nobody has claimed in time."""

    def __init__(self, store: ConsoleStore, rasa: RasaClient, hub: Hub, customers: Customers):
        self.store, self.rasa, self.hub, self.customers = store, rasa, hub, customers
        self.handoffs: list = []
        self.trackers: dict[str, dict] = {}
        self._queue_signature: tuple = ()
        self._lengths: dict[str, int] = {}

    async def run(self) -> None:
        await tick_forever(self.tick, POLL_SECONDS, "console watcher")

    async def tick(self) -> None:
        handoffs = await asyncio.to_thread(self.store.open_handoffs)
        self.handoffs = handoffs
        wanted = {h.conversation_id for h in handoffs}
        for conversation_id in wanted:
            try:
                self.trackers[conversation_id] = await self.rasa.tracker(conversation_id)
            except RasaUnavailable as exc:
                logger.warning("console: no tracker for %s: %s", conversation_id, exc)
        for gone in set(self.trackers) - wanted:
            self.trackers.pop(gone, None)
            self._lengths.pop(gone, None)
        for handoff in handoffs:
            if handoff.left_message and handoff.status == "waiting" and handoff.conversation_id in self.trackers:
                said = said_since_pause(self.trackers[handoff.conversation_id])
                await asyncio.to_thread(self.store.keep_left_messages, handoff.id, handoff.conversation_id, said)
        for conversation_id in wanted:
            length = len(transcript(self.trackers.get(conversation_id, {})))
            if self._lengths.get(conversation_id) != length:
                self._lengths[conversation_id] = length
                self.hub.publish("console", {"type": "messages", "conversation_id": conversation_id})
        signature = tuple(
            (h.id, h.status, h.claimed_by, h.left_message, tuple(h.tags), self._lengths.get(h.conversation_id))
            for h in handoffs
        )
        if signature != self._queue_signature:
            new_requests = {h.id for h in handoffs if h.status == "waiting"} - {
                item[0] for item in self._queue_signature if item[1] == "waiting"
            }
            self._queue_signature = signature
            self.hub.publish("console", {"type": "queue", "new": sorted(new_requests)})
        await self.send_updates()

    async def send_updates(self) -> None:
        for handoff in await asyncio.to_thread(self.store.stale_left_messages):
            if await asyncio.to_thread(self.store.mark_updated, handoff.id):
                try:
                    await self.rasa.resume(handoff.conversation_id)
                    logger.info(
                        "console: 留言 of %s unanswered for long; the bot answers again", handoff.conversation_id
                    )
                except RasaUnavailable as exc:
                    logger.error("console: could not resume %s: %s", handoff.conversation_id, exc)
        for handoff in await asyncio.to_thread(self.store.due_for_update):
            if not await asyncio.to_thread(self.store.mark_updated, handoff.id):
                continue
            try:
                messages = await self.rasa.send_response(handoff.conversation_id, STILL_WAITING_RESPONSE)
                await self.customers.deliver(handoff.conversation_id, messages)
                logger.info("console: told %s that the hand-off is still waiting", handoff.conversation_id)
            except Exception as exc:  # noqa: BLE001
                logger.error("console: could not send the waiting update to %s: %s", handoff.conversation_id, exc)

    def verified_names(self) -> dict[str, str]:
        """Conversation id → name of its verified customer (blocking: run in a thread)."""
        from kefu.shop.repository import get_repository

        names = {}
        for conversation_id, tracker in list(self.trackers.items()):
            customer_id = verified_customer(tracker)
            if customer_id is not None:
                customer = get_repository().customer_by_id(customer_id)
                names[conversation_id] = customer.name if customer else "顾客"
        return names

    def queue_item(self, handoff, names: dict[str, str] | None = None) -> dict:
        tracker = self.trackers.get(handoff.conversation_id, {})
        lines = transcript(tracker)
        said = [line["text"] for line in lines if line["who"] == "customer"]
        return {
            "id": handoff.id,
            "conversation_id": handoff.conversation_id,
            "reason": handoff.reason,
            "reason_zh": REASON_ZH.get(handoff.reason, handoff.reason),
            "status": handoff.status,
            "created_at": iso(handoff.created_at),
            "waited_seconds": int((utcnow() - handoff.created_at).total_seconds()),
            "claimed_by": handoff.claimed_by,
            "claimed_by_name": handoff.claimed_by_name,
            "left_message": handoff.left_message,
            "channel": channel_of(handoff.conversation_id, tracker),
            "customer": customer_label(handoff.conversation_id, tracker, names or {}),
            "last_messages": said[-3:],
            "tags": handoff.tags,
        }


def said_since_pause(tracker: dict) -> list[str]:
    """The customer's messages after the conversation was last paused."""
    events = tracker.get("events") or []
    pauses = [i for i, e in enumerate(events) if e.get("event") == "pause"]
    if not pauses:
        return []
    return [e.get("text") or "" for e in events[pauses[-1] :] if e.get("event") == "user"]


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None


def channel_of(conversation_id: str, tracker: dict) -> str:
    channel = tracker.get("latest_input_channel") or ""
    if conversation_id.startswith("wechat-") or channel == "wechat":
        return "wechat"
    return "web"


def customer_label(conversation_id: str, tracker: dict, names: dict[str, str]) -> str:
    """A name only once the customer is verified; otherwise a masked visitor id."""
    if conversation_id in names:
        return f"{names[conversation_id]}（已验证）"
    return f"访客 …{conversation_id[-4:]}"


# --- the app --------------------------------------------------------------------


class SessionLimiter:
    """At most `limit` new chat sessions per client address in `window`
    seconds. Every session is a new sender id, hence three new guesses at an
    order's phone tail: a client that asks for many is slowed down here, on
    top of the per-order lock in the shop service."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self.issued: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, address: str) -> bool:
        now = self.clock()
        recent = self.issued[address]
        while recent and now - recent[0] > self.window:
            recent.popleft()
        if len(recent) >= self.limit:
            return False
        recent.append(now)
        if len(self.issued) > 100_000:  # forget the quiet ones rather than grow without end
            for quiet in [a for a, times in self.issued.items() if not times]:
                del self.issued[quiet]
        return True


def as_json(data: Any, status: int = 200) -> HTTPResponse:
    return response.json(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str))


def json_error(status: int, message: str, **extra: Any) -> HTTPResponse:
    return as_json({"error": message, **extra}, status=status)


def create_app(rasa_url: str, *, demo_login: bool = False, store: ConsoleStore | None = None) -> Sanic:
    app = Sanic("kefu_web")
    # Server-sent-event streams stay open; browsers reconnect on their own.
    app.config.RESPONSE_TIMEOUT = 24 * 3600
    app.config.REQUEST_MAX_SIZE = 1024 * 1024
    # Behind a reverse proxy (make prod: nginx) the client's address comes from
    # X-Forwarded-For; trusted only when KEFU_PROXIES_COUNT says a proxy is there.
    app.config.PROXIES_COUNT = int(os.environ.get("KEFU_PROXIES_COUNT", "0"))
    app.ctx.store = store or ConsoleStore()
    app.ctx.notices = NoticeStore(getattr(app.ctx.store, "_engine", None))
    app.ctx.hub = Hub()
    app.ctx.rasa_url = rasa_url
    app.ctx.demo_login = demo_login
    app.ctx.sessions = SessionLimiter(
        int(os.environ.get("KEFU_SESSIONS_PER_ADDRESS", "30")), float(os.environ.get("KEFU_SESSIONS_WINDOW", "3600"))
    )

    @app.before_server_start
    async def start_watcher(app_: Sanic, _loop) -> None:
        app_.ctx.rasa = RasaClient(rasa_url)
        app_.ctx.customers = Customers(app_.ctx.hub)
        app_.ctx.watcher = Watcher(app_.ctx.store, app_.ctx.rasa, app_.ctx.hub, app_.ctx.customers)
        app_.add_task(app_.ctx.watcher.run())
        app_.add_task(NoticeRelay(app_.ctx.notices, app_.ctx.hub).run())

    @app.after_server_stop
    async def stop_client(app_: Sanic, _loop) -> None:
        await app_.ctx.rasa.close()

    @app.middleware("response")
    async def safety_headers(request: Request, resp: HTTPResponse) -> None:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Cache-Control", "no-cache")
        if request.path.startswith("/console"):
            resp.headers.setdefault("X-Frame-Options", "DENY")
            resp.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
            )

    register_chat_page(app)
    register_console(app)
    return app


def static_file(root: Path, relative: str) -> Path | None:
    """A file under `root`, never outside it (no ../ escapes)."""
    target = (root / relative).resolve()
    if root.resolve() not in target.parents or not target.is_file():
        return None
    return target


def register_chat_page(app: Sanic) -> None:
    @app.get("/")
    async def index(_: Request) -> HTTPResponse:
        return await response.file(WEB_ROOT / "index.html", mime_type="text/html; charset=utf-8")

    @app.get("/index.html")
    async def index_html(_: Request) -> HTTPResponse:
        return await response.file(WEB_ROOT / "index.html", mime_type="text/html; charset=utf-8")

    @app.get("/config.js")
    async def config_js(_: Request) -> HTTPResponse:
        config = {"rasaUrl": app.ctx.rasa_url, "demoLogin": app.ctx.demo_login}
        return response.text(
            f"window.KEFU_CONFIG = {json.dumps(config)};\n", content_type="application/javascript; charset=utf-8"
        )

    @app.get("/static/<relative:path>")
    async def static(_: Request, relative: str) -> HTTPResponse:
        if relative.startswith("products/"):
            relative = "product.svg"  # demo products have no photos; the generic picture stands in
        path = static_file(WEB_ROOT / "static", relative)
        if path is None:
            return json_error(404, "not found")
        return await response.file(path)

    @app.post("/api/session")
    async def new_session(request: Request) -> HTTPResponse:
        """A new chat's sender id, chosen here, with the token that proves it."""
        address = request.remote_addr or request.ip
        if not app.ctx.sessions.allow(address):
            logger.warning("too many new chat sessions from %s; refused for now", address)
            return json_error(429, "新会话太频繁了，请稍后再试，或联系人工客服。")
        try:
            sender, token = issue_web_session()
        except RuntimeError:
            logger.error("no KEFU_TOKEN_SECRET: chat sessions cannot be issued")
            return json_error(503, "chat sessions are not configured")
        return as_json({"sender": sender, "session_token": token})

    @app.post("/api/demo-token")
    async def demo_token(_: Request) -> HTTPResponse:
        if not app.ctx.demo_login:
            return json_error(403, "demo login is off")
        return as_json({"token": sign_customer_token(DEMO_CUSTOMER_ID, ttl_seconds=8 * 3600)})

    @app.get("/api/chat/events")
    async def chat_events(request: Request):
        sender = request.args.get("sender", "")
        if not may_listen(request, sender):
            return json_error(403, "not your conversation")
        # A page that was away (a 留言 answered later, a reload) gets what agents said since.
        try:
            after = int(request.args.get("after", "0"))
            missed = await asyncio.to_thread(app.ctx.store.agent_messages_after, sender, after)
        except (ValueError, DatabaseError):
            missed = []
        first = [{"type": "bot", "agent": m["agent"], "id": m["id"], "messages": [{"text": m["text"]}]} for m in missed]
        # A logged-in customer's page also receives their notices: those kept
        # while no page was open first, then new ones as the worker sends them.
        customer_id = verify_customer_token(request.args.get("customer_token"))
        also: tuple[str, ...] = ()
        if customer_id is not None:
            also = (notice_topic(customer_id),)
            try:
                kept = await asyncio.to_thread(app.ctx.notices.kept_for_web, customer_id)
            except DatabaseError:
                kept = []
            first += [notice_event(n) for n in kept]

        async def delivered(item: dict) -> None:
            if item.get("notice"):
                try:
                    # Shielded: a page closed right after it received the notice
                    # must not leave it to be shown again at the next open.
                    await asyncio.shield(asyncio.to_thread(app.ctx.notices.mark_delivered, [item["notice"]]))
                except DatabaseError as exc:
                    logger.error("notice %s shown but not marked delivered: %s", item["notice"], exc)
            if item.get("order_no"):
                # The conversation now knows the order the notice was about:
                # "帮我改下地址" right after it needs no order number.
                try:
                    await app.ctx.rasa.append_events(
                        sender, [{"event": "slot", "name": "order_no", "value": item["order_no"]}]
                    )
                except Exception as exc:  # noqa: BLE001 - Rasa away or slow: the notice was shown all the same
                    logger.warning("notice %s: the order was not noted in %s: %s", item.get("notice"), sender, exc)

        await stream(request, app.ctx.hub, f"chat:{sender}", first=first, also=also, on_sent=delivered)

    @app.post("/api/notices/<notice_id:int>/click")
    async def notice_clicked(request: Request, notice_id: int) -> HTTPResponse:
        """A button of a notice was pressed on the page (the campaign's 'clicked')."""
        data = request.json if isinstance(request.json, dict) else {}
        customer_id = verify_customer_token(data.get("customer_token"))
        if customer_id is None:
            return json_error(403, "not your notice")
        await asyncio.to_thread(app.ctx.notices.mark_clicked, notice_id, customer_id)
        return as_json({"ok": True})

    register_notice_events(app)


# --- the console ----------------------------------------------------------------

Handler = Callable[..., Awaitable[HTTPResponse]]


def register_console(app: Sanic) -> None:
    store: ConsoleStore = app.ctx.store
    console_root = WEB_ROOT / "console"

    async def db(fn: Callable, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def signed_in(request: Request) -> SignedIn | None:
        return await db(store.signed_in, request.cookies.get(SESSION_COOKIE))

    def secure(request: Request) -> bool:
        return request.scheme == "https" or os.environ.get("KEFU_COOKIE_SECURE") == "1"

    def set_cookie(resp: HTTPResponse, request: Request, name: str, value: str, *, max_age: int) -> None:
        resp.cookies[name] = value
        resp.cookies[name]["httponly"] = True
        resp.cookies[name]["samesite"] = "Strict"
        resp.cookies[name]["path"] = "/console"
        resp.cookies[name]["max-age"] = max_age
        if secure(request):
            resp.cookies[name]["secure"] = True

    def api(*, admin: bool = False, changes: bool = False):
        """Console API guard: 401 without a session, 403 for an agent on an
        admin route, 403 for a state change without the session's CSRF token."""

        def wrap(handler: Handler) -> Handler:
            async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
                try:
                    who = await signed_in(request)
                except DatabaseError as exc:
                    logger.error("console: shop database unavailable: %s", exc)
                    return json_error(503, "数据库暂时不可用，请稍后再试")
                if who is None:
                    return json_error(401, "请先登录")
                if changes and not secrets.compare_digest(request.headers.get(CSRF_HEADER, ""), who.csrf_token):
                    return json_error(403, "CSRF 校验失败，请刷新页面")
                if admin and who.staff.role != "admin":
                    return json_error(403, "需要管理员权限")
                try:
                    return await handler(request, who, *args, **kwargs)
                except DatabaseError as exc:
                    logger.error("console: shop database unavailable: %s", exc)
                    return json_error(503, "数据库暂时不可用，请稍后再试")
                except RasaUnavailable as exc:
                    logger.error("console: Rasa unavailable: %s", exc)
                    return json_error(502, "机器人服务暂时不可用，请稍后再试")
                except DeliveryFailed:
                    return json_error(502, "消息已记录，但未能发送到顾客的微信，请稍后重试")

            guarded.__name__ = handler.__name__
            return guarded

        return wrap

    def body(request: Request) -> dict:
        try:
            data = request.json
        except Exception:  # noqa: BLE001 - a malformed body is an empty one
            return {}
        return data if isinstance(data, dict) else {}

    # pages
    @app.get("/console/")
    async def console_page(request: Request) -> HTTPResponse:
        if await signed_in(request) is None:
            return response.redirect("/console/login")
        return await response.file(console_root / "index.html", mime_type="text/html; charset=utf-8")

    @app.get("/console/login")
    async def login_page(request: Request) -> HTTPResponse:
        csrf = secrets.token_urlsafe(24)
        page = (console_root / "login.html").read_text(encoding="utf-8").replace("{{csrf}}", csrf)
        resp = response.html(page)
        set_cookie(resp, request, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
        return resp

    @app.post("/console/login")
    async def login(request: Request) -> HTTPResponse:
        form = request.form or {}
        name, password = form.get("name", ""), form.get("password", "")
        sent_csrf, cookie_csrf = form.get("csrf", ""), request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie_csrf or not secrets.compare_digest(sent_csrf, cookie_csrf):
            return response.redirect("/console/login?error=csrf")
        result = await db(store.check_login, name, password)
        if result.staff is None:
            await asyncio.sleep(1.0)  # slows guessing down on top of the lock-out
            logger.warning("console: failed login for %r from %s", name[:64], request.ip)
            return response.redirect("/console/login?error=" + ("locked" if result.locked_until else "wrong"))
        token, _csrf = await db(store.open_session, result.staff.id)
        logger.info("console: %s (%s) signed in", result.staff.name, result.staff.role)
        resp = response.redirect("/console/")
        set_cookie(resp, request, SESSION_COOKIE, token, max_age=12 * 3600)
        set_cookie(resp, request, LOGIN_CSRF_COOKIE, "", max_age=0)
        return resp

    @app.post("/console/logout")
    @api(changes=True)
    async def logout(request: Request, who: SignedIn) -> HTTPResponse:
        await db(store.close_session, request.cookies.get(SESSION_COOKIE))
        await db(store.mark_away, who.staff.id)
        resp = as_json({"ok": True})
        set_cookie(resp, request, SESSION_COOKIE, "", max_age=0)
        return resp

    @app.get("/console/static/<relative:path>")
    async def console_static(_: Request, relative: str) -> HTTPResponse:
        path = static_file(console_root / "static", relative)
        if path is None:
            return json_error(404, "not found")
        return await response.file(path)

    # API
    @app.get("/console/api/me")
    @api()
    async def me(_: Request, who: SignedIn) -> HTTPResponse:
        await db(store.touch, who.staff.id)
        return as_json({"id": who.staff.id, "name": who.staff.name, "role": who.staff.role, "csrf": who.csrf_token})

    @app.get("/console/api/queue")
    @api()
    async def queue(_: Request, who: SignedIn) -> HTTPResponse:
        watcher: Watcher = app.ctx.watcher
        handoffs = await db(store.open_handoffs)
        names = await db(watcher.verified_names)
        return as_json({"items": [watcher.queue_item(h, names) for h in handoffs]})

    @app.get("/console/api/events")
    @api()
    async def events(request: Request, who: SignedIn):
        await db(store.touch, who.staff.id)

        async def still_here() -> None:
            await db(store.touch, who.staff.id)

        await stream(request, app.ctx.hub, "console", first=[{"type": "hello"}], every_ping=still_here)

    async def open_handoff(handoff_id: int):
        handoff = await db(store.handoff, handoff_id)
        if handoff is None:
            return None, None
        tracker = app.ctx.watcher.trackers.get(handoff.conversation_id)
        if tracker is None:
            tracker = await app.ctx.rasa.tracker(handoff.conversation_id)
        return handoff, tracker

    @app.get("/console/api/handoffs/<handoff_id:int>")
    @api()
    async def conversation(_: Request, who: SignedIn, handoff_id: int) -> HTTPResponse:
        handoff, tracker = await open_handoff(handoff_id)
        if handoff is None:
            return json_error(404, "没有这个转人工请求")
        customer_id = await db(verified_customer, tracker)
        panel = await db(customer_panel, store, handoff.conversation_id, customer_id)
        names = await db(app.ctx.watcher.verified_names)
        return as_json(
            {
                "handoff": app.ctx.watcher.queue_item(handoff, names)
                if handoff.status != "closed"
                else {"id": handoff.id, "status": handoff.status, "conversation_id": handoff.conversation_id},
                "mine": handoff.claimed_by == who.staff.id and handoff.status == "taken",
                "paused": is_paused(tracker),
                "transcript": transcript(tracker),
                "left_messages": [
                    m["text"] for m in await db(store.messages, handoff.conversation_id) if m["sender"] == "customer"
                ],
                "customer": panel,
            }
        )

    @app.get("/console/api/handoffs/<handoff_id:int>/orders")
    @api()
    async def customer_orders(_: Request, who: SignedIn, handoff_id: int) -> HTTPResponse:
        handoff, tracker = await open_handoff(handoff_id)
        if handoff is None:
            return json_error(404, "没有这个转人工请求")
        customer_id = await db(verified_customer, tracker)
        if customer_id is None:
            return json_error(403, "顾客未验证身份，不能查看订单")
        orders = await db(orders_for_console, customer_id)
        await db(
            store.audit,
            who.staff.id,
            handoff.conversation_id,
            "console_view_orders",
            None,
            f"customer {customer_id}: {len(orders)} orders",
        )
        return as_json({"orders": orders})

    @app.post("/console/api/handoffs/<handoff_id:int>/claim")
    @api(changes=True)
    async def claim(_: Request, who: SignedIn, handoff_id: int) -> HTTPResponse:
        result = await db(store.claim, handoff_id, who.staff.id)
        if not result.ok:
            if result.conversation_id is None:
                return json_error(404, "没有这个转人工请求")
            holder = result.holder or "其他客服"
            return json_error(
                409, f"该会话已由 {holder} 接入" if result.status == "taken" else "该会话已结束", holder=result.holder
            )
        try:
            await app.ctx.rasa.pause(result.conversation_id)
        except RasaUnavailable:
            # Without the pause the bot would go on answering: the claim is undone.
            await db(store.release, handoff_id, who.staff.id)
            raise
        logger.info("console: %s claimed hand-off %s (%s)", who.staff.name, handoff_id, result.conversation_id)
        await app.ctx.watcher.tick()
        return as_json({"ok": True, "conversation_id": result.conversation_id})

    @app.post("/console/api/handoffs/<handoff_id:int>/reply")
    @api(changes=True)
    async def reply(request: Request, who: SignedIn, handoff_id: int) -> HTTPResponse:
        text = str(body(request).get("text") or "").strip()
        if not text:
            return json_error(400, "请输入回复内容")
        if len(text) > MAX_REPLY_CHARS:
            return json_error(400, f"回复最多 {MAX_REPLY_CHARS} 字")
        handoff = await db(store.handoff, handoff_id)
        if handoff is None or handoff.status != "taken" or handoff.claimed_by != who.staff.id:
            return json_error(403, "请先接入该会话")
        message_id = await db(
            lambda: store.add_message(
                handoff.conversation_id, "agent", text, staff_id=who.staff.id, handoff_id=handoff.id
            )
        )
        await app.ctx.rasa.say_as_agent(handoff.conversation_id, text, who.staff.name)
        await app.ctx.customers.deliver(
            handoff.conversation_id, [{"text": text}], agent=who.staff.name, message_id=message_id
        )
        app.ctx.hub.publish("console", {"type": "messages", "conversation_id": handoff.conversation_id})
        return as_json({"ok": True})

    @app.post("/console/api/handoffs/<handoff_id:int>/handback")
    @api(changes=True)
    async def hand_back(_: Request, who: SignedIn, handoff_id: int) -> HTTPResponse:
        conversation_id = await db(store.hand_back, handoff_id, who.staff.id)
        if conversation_id is None:
            return json_error(403, "只能交还自己接入的会话")
        rasa: RasaClient = app.ctx.rasa
        await rasa.resume(conversation_id)
        messages = []
        for name in (HANDBACK_RESPONSE, ASK_RATING_RESPONSE):
            messages += await rasa.send_response(conversation_id, name)
        await app.ctx.customers.deliver(conversation_id, messages)
        logger.info("console: %s handed %s back to the bot", who.staff.name, conversation_id)
        await app.ctx.watcher.tick()
        return as_json({"ok": True})

    async def annotate(request: Request, who: SignedIn, handoff_id: int, field: str) -> HTTPResponse:
        """A note or a tag on a hand-off's customer (their conversation, and
        the customer too once verified, so that it follows them)."""
        limit, empty, save = {
            "text": (1000, "备注不能为空", store.add_note),
            "tag": (32, "标签不能为空", store.add_tag),
        }[field]
        value = str(body(request).get(field) or "").strip()[:limit]
        if not value:
            return json_error(400, empty)
        handoff, tracker = await open_handoff(handoff_id)
        if handoff is None:
            return json_error(404, "没有这个转人工请求")
        await db(save, handoff.conversation_id, await db(verified_customer, tracker), who.staff.id, value)
        return as_json({"ok": True})

    @app.post("/console/api/handoffs/<handoff_id:int>/notes")
    @api(changes=True)
    async def add_note(request: Request, who: SignedIn, handoff_id: int) -> HTTPResponse:
        return await annotate(request, who, handoff_id, "text")

    @app.post("/console/api/handoffs/<handoff_id:int>/tags")
    @api(changes=True)
    async def add_tag(request: Request, who: SignedIn, handoff_id: int) -> HTTPResponse:
        return await annotate(request, who, handoff_id, "tag")

    @app.get("/console/api/canned")
    @api()
    async def canned(_: Request, who: SignedIn) -> HTTPResponse:
        return as_json({"items": await db(store.canned_replies)})

    @app.post("/console/api/canned")
    @api(admin=True, changes=True)
    async def save_canned(request: Request, who: SignedIn) -> HTTPResponse:
        data = body(request)
        shortcut = str(data.get("shortcut") or "").strip().lstrip("/")[:32]
        text = str(data.get("text") or "").strip()[:1000]
        if not re.fullmatch(r"[\w\u4e00-\u9fff-]{1,32}", shortcut) or not text:
            return json_error(400, "快捷词（字母、数字或汉字）和内容都不能为空")
        await db(store.save_canned_reply, shortcut, text)
        return as_json({"ok": True})

    @app.post("/console/api/canned/<reply_id:int>/delete")
    @api(admin=True, changes=True)
    async def delete_canned(_: Request, who: SignedIn, reply_id: int) -> HTTPResponse:
        await db(store.delete_canned_reply, reply_id)
        return as_json({"ok": True})

    # FAQ answers (常见问题答案): admins edit the texts the bot gives for the
    # faq questions; the bot reads them when it answers (kefu/faq_nlg.py).
    faq_store = FaqAnswerStore()

    def faq_items() -> list[dict]:
        edited = faq_store.edited()
        items = []
        for key, default in domain_faq_answers().items():
            text, updated_at, updated_by = edited.get(key, (None, None, None))
            items.append(
                {
                    "key": key,
                    "label": default.label,
                    "default": default.text,
                    "text": text if text is not None else default.text,
                    "edited": text is not None,
                    "updated_at": updated_at,
                }
            )
        return items

    @app.get("/console/faq")
    async def faq_page(request: Request) -> HTTPResponse:
        who = await signed_in(request)
        if who is None:
            return response.redirect("/console/login")
        if who.staff.role != "admin":
            return response.html('<p>需要管理员权限。<a href="/console/">返回工作台</a></p>', status=403)
        return await response.file(console_root / "faq.html", mime_type="text/html; charset=utf-8")

    @app.get("/console/api/faq")
    @api(admin=True)
    async def faq_answers(_: Request, who: SignedIn) -> HTTPResponse:
        return as_json({"items": await db(faq_items)})

    @app.post("/console/api/faq")
    @api(admin=True, changes=True)
    async def save_faq_answer(request: Request, who: SignedIn) -> HTTPResponse:
        data = body(request)
        key = str(data.get("key") or "")
        text = str(data.get("text") or "").strip()
        if key not in domain_faq_answers():
            return json_error(404, "没有这个常见问题")
        if not text:
            return json_error(400, "答案不能为空；要用默认答案请点“恢复默认”")
        if len(text) > MAX_FAQ_ANSWER_CHARS:
            return json_error(400, f"答案最多 {MAX_FAQ_ANSWER_CHARS} 字")
        await db(faq_store.save, key, text, who.staff.id)
        logger.info("console: %s edited the FAQ answer %s", who.staff.name, key)
        return as_json({"ok": True})

    @app.post("/console/api/faq/reset")
    @api(admin=True, changes=True)
    async def reset_faq_answer(request: Request, who: SignedIn) -> HTTPResponse:
        key = str(body(request).get("key") or "")
        if key not in domain_faq_answers():
            return json_error(404, "没有这个常见问题")
        if await db(faq_store.reset, key, who.staff.id):
            logger.info("console: %s put the FAQ answer %s back to its default", who.staff.name, key)
        return as_json({"ok": True})

    # The analytics dashboard (数据分析), behind the same guard.
    register_dashboard(app, api=api, signed_in=signed_in, db=db, json_error=json_error, as_json=as_json)
    # The campaign page (营销活动), admins only.
    register_campaigns(app, api=api, signed_in=signed_in, db=db, json_error=json_error, as_json=as_json)


def customer_panel(store: ConsoleStore, conversation_id: str, customer_id: int | None) -> dict:
    """Profile and history for a verified customer; nothing but notes for an anonymous one."""
    from kefu.shop.repository import get_repository

    panel: dict[str, Any] = {
        "verified": customer_id is not None,
        **store.notes_and_tags(conversation_id, customer_id),
        "handoffs": [{**h, "created_at": china_time(h["created_at"])} for h in store.history(conversation_id)],
        "ratings": [{**r, "created_at": china_time(r["created_at"])} for r in store.ratings(conversation_id)],
    }
    panel["notes"] = [{**n, "created_at": china_time(n["created_at"])} for n in panel["notes"]]
    if customer_id is None:
        return panel
    repository = get_repository()
    customer = repository.customer_by_id(customer_id)
    if customer is not None:
        panel["profile"] = {
            "id": customer.id,
            "name": customer.name,
            "phone": mask_phone(customer.phone),
            "wechat": bool(customer.wechat_openid),
        }
    panel["tickets"] = [
        {
            "ticket_no": t.ticket_no,
            "kind": TICKET_KIND_ZH.get(t.kind, t.kind),
            "status": TICKET_STATUS_ZH.get(t.status, t.status),
            "created_at": china_time(t.created_at),
        }
        for t in repository.tickets_of_customer(customer_id, limit=5)
    ]
    return panel


def orders_for_console(customer_id: int) -> list[dict]:
    from kefu.shop.repository import get_repository

    repository = get_repository()
    orders = []
    for order in repository.orders_of_customer(customer_id, limit=5):
        latest = repository.shipment_events(order.id, limit=1)
        orders.append(
            {
                "order_no": order.order_no,
                "status": ORDER_STATUS_ZH.get(order.status, order.status),
                "total": yuan(order.total_cents),
                "created_at": china_time(order.created_at),
                "items": "、".join(f"{i.product_name}×{i.quantity}" for i in order.items),
                "logistics": (
                    f"{china_time(latest[0].happened_at)} {latest[0].location} {latest[0].description}"
                    if latest
                    else ""
                ),
            }
        )
    return orders


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kefu.web")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--rasa-url", default="http://localhost:5005")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    demo_login = demo_login_allowed(args.host, os.environ)
    if os.environ.get("KEFU_DEMO_LOGIN") == "1" and not demo_login:
        logger.error(
            "KEFU_DEMO_LOGIN=1 ignored: the demo login needs KEFU_TOKEN_SECRET and a page on loopback, not %s",
            args.host,
        )

    try:
        ensure_schema()
    except DatabaseError as exc:
        logger.error("the console needs the shop database: %s", exc)
    app = create_app(args.rasa_url, demo_login=demo_login)
    logger.info(
        "chat page on http://%s:%s/ and console on http://%s:%s/console/ (Rasa at %s, demo login %s)",
        args.host,
        args.port,
        args.host,
        args.port,
        args.rasa_url,
        "on" if demo_login else "off",
    )
    app.run(host=args.host, port=args.port, workers=1, access_log=False)


if __name__ == "__main__":
    main()
