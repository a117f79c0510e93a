"""Notices inside kefu.web (the chat page's server):

- NoticeRelay: every second, web notices the worker has just sent are
  pushed to the customer's open chat pages (topic notice:<customer id>)
  and marked delivered; a customer with no page open gets them when they
  next open it (kefu.web's /api/chat/events, from the outbox);
- POST /api/notices/events: a shop's own order system reports an event
  (docs/notices.md), authenticated with KEFU_EVENTS_SECRET;
- the campaign page of the console (营销活动, admins).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from kefu.db.engine import DatabaseError, utcnow
from kefu.notices.rules import QuietHours
from kefu.notices.store import Audience, NoticeStore
from kefu.notices.templates import render
from kefu.polling import tick_forever

logger = logging.getLogger(__name__)
PAGE = Path(__file__).resolve().parents[2] / "web" / "console" / "campaigns.html"
RELAY_SECONDS = 1.0
PAGE_ROWS = 500
EVENT_TOPICS = ("shipment", "payment", "ticket", "refund", "other")
MAX_EVENT_TEXT = 500


def notice_topic(customer_id: int) -> str:
    return f"notice:{customer_id}"


def notice_event(notice: dict) -> dict:
    """What the chat page receives for a notice (docs/payloads.md)."""
    event = {"type": "bot", "notice": notice["id"], "messages": notice["messages"]}
    if notice.get("order_no"):
        event["order_no"] = notice["order_no"]
    return event


class NoticeRelay:
    """Pushes the web notices the worker marks sent to the pages open now.

    Reads by sent_at, from a little before its last round (the worker's
    clock and commit may lag a moment), and remembers what it pushed in the
    last seconds so that nothing is pushed twice."""

    OVERLAP = timedelta(seconds=3)

    def __init__(self, store: NoticeStore, hub: Any) -> None:
        self.store, self.hub = store, hub
        self.since: datetime | None = None
        self.pushed: dict[int, datetime] = {}

    async def run(self) -> None:
        await tick_forever(self.tick, RELAY_SECONDS, "notice relay")

    async def tick(self) -> None:
        if self.since is None:
            # Those sent before this server started are shown at the next open.
            self.since = utcnow()
            return
        fresh: list[dict] = []
        start, after = self.since - self.OVERLAP, None
        while True:  # a campaign can send more in a second than one page of rows
            page = await asyncio.to_thread(self.store.web_sent_since, start, PAGE_ROWS, after)
            fresh += [n for n in page if n["id"] not in self.pushed]
            if len(page) < PAGE_ROWS:
                break
            after = (page[-1]["sent_at"], page[-1]["id"])
        for notice in fresh:
            self.pushed[notice["id"]] = notice["sent_at"]
            self.since = max(self.since, notice["sent_at"])
        for notice in fresh:
            if self.hub.listeners(notice_topic(notice["customer_id"])):
                # Marked delivered by the stream once it has written it to the page.
                self.hub.publish(notice_topic(notice["customer_id"]), notice_event(notice))
        horizon = self.since - 2 * self.OVERLAP
        self.pushed = {i: at for i, at in self.pushed.items() if at >= horizon}


def _authorised(request: Request) -> bool:
    secret = os.environ.get("KEFU_EVENTS_SECRET", "")
    given = request.headers.get("Authorization", "")
    return bool(secret) and hmac.compare_digest(given.encode("utf-8", "replace"), f"Bearer {secret}".encode())


def register_notice_events(app: Sanic) -> None:
    @app.post("/api/notices/events")
    async def shop_event(request: Request) -> HTTPResponse:
        """One event of the shop's own order system, made a service notice.

        Body: {"event_id": "...", "customer_id": 1, "topic": "shipment",
        "text": "您的订单…已发货", "order_no": "…"(optional)}. The same
        event_id twice is one notice (200 with "duplicate": true)."""
        if not _authorised(request):
            logger.warning("notices: event refused from %s (bad or missing KEFU_EVENTS_SECRET)", request.ip)
            return response.json({"error": "unauthorised"}, status=401)
        data = request.json if isinstance(request.json, dict) else None
        if data is None:
            return response.json({"error": "a JSON object is expected"}, status=400)
        event_id = str(data.get("event_id") or "").strip()
        text = str(data.get("text") or "").strip()
        topic = str(data.get("topic") or "other")
        customer_id = data.get("customer_id")
        problems = []
        if not re.fullmatch(r"[\w.:-]{1,100}", event_id):
            problems.append("event_id: 1-100 letters, digits, . : _ -")
        if not isinstance(customer_id, int) or customer_id <= 0:
            problems.append("customer_id: a positive integer")
        if not text or len(text) > MAX_EVENT_TEXT:
            problems.append(f"text: 1-{MAX_EVENT_TEXT} characters")
        if topic not in EVENT_TOPICS:
            problems.append(f"topic: one of {', '.join(EVENT_TOPICS)}")
        if problems or not isinstance(customer_id, int):
            return response.json({"error": "; ".join(problems)}, status=400)
        messages: list[dict] = [{"text": text}]
        order_no = str(data.get("order_no") or "")
        if re.fullmatch(r"\d{6,32}", order_no):
            messages = [
                {
                    "text": text,
                    "buttons": [{"title": "查看订单", "payload": f'/order_status{{"order_no": "{order_no}"}}'}],
                }
            ]
        store: NoticeStore = app.ctx.notices
        try:
            notice_id = await asyncio.to_thread(
                store.add, f"ext:{event_id}:{customer_id}", customer_id, "service", "external", messages
            )
        except DatabaseError as exc:
            logger.error("notices: event %s not stored: %s", event_id, exc)
            return response.json({"error": "storage unavailable, retry later"}, status=503)
        logger.info("notices: shop event %s for customer %s (%s)", event_id, customer_id, topic)
        return response.json({"ok": True, "notice_id": notice_id, "duplicate": notice_id is None})


def _campaign_json(item: dict) -> dict:
    return {**item, "send_at": iso(item["send_at"]), "created_at": iso(item["created_at"])}


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None


def register_campaigns(
    app: Sanic, *, api: Callable, signed_in: Callable, db: Callable, json_error: Callable, as_json: Callable
) -> None:
    """The console's campaign page (营销活动): admins only."""

    def store() -> NoticeStore:
        return app.ctx.notices

    @app.get("/console/campaigns")
    async def campaigns_page(request: Request) -> HTTPResponse:
        who = await signed_in(request)
        if who is None:
            return response.redirect("/console/login")
        if who.staff.role != "admin":
            return response.html("<p>需要管理员权限</p>", status=403)
        return await response.file(PAGE, mime_type="text/html; charset=utf-8")

    def audience_of(data: dict) -> Audience | str:
        try:
            audience = Audience.from_dict(data.get("audience") or {})
        except (TypeError, ValueError):
            return "受众条件格式不对"
        if audience.days is not None and not 1 <= audience.days <= 365:
            return "天数应在 1 到 365 之间"
        return audience

    def message_of(data: dict) -> str:
        return str(data.get("message") or "").strip()[:300]

    @app.get("/console/api/campaigns")
    @api(admin=True)
    async def campaigns(_: Request, who: Any) -> HTTPResponse:
        items = await db(store().campaigns)
        promotions = await db(store().promotions)
        quiet = QuietHours.from_env()
        return as_json(
            {
                "quiet_hours": f"{quiet.start:02d}:00–{quiet.end:02d}:00" if quiet else None,
                "categories": await db(store().categories),
                "campaigns": [_campaign_json(c) for c in items],
                "promotions": [
                    {**p, "starts_at": iso(p["starts_at"]), "ends_at": iso(p["ends_at"])} for p in promotions
                ],
            }
        )

    @app.post("/console/api/campaigns/preview")
    @api(admin=True, changes=True)
    async def preview(request: Request, who: Any) -> HTTPResponse:
        data = request.json if isinstance(request.json, dict) else {}
        audience = audience_of(data)
        if isinstance(audience, str):
            return json_error(400, audience)
        message = message_of(data)
        count = await db(store().audience_count, audience)
        return as_json({"count": count, "messages": render("utter_notice_campaign", message=message or "（活动内容）")})

    @app.post("/console/api/campaigns")
    @api(admin=True, changes=True)
    async def create(request: Request, who: Any) -> HTTPResponse:
        data = request.json if isinstance(request.json, dict) else {}
        audience = audience_of(data)
        if isinstance(audience, str):
            return json_error(400, audience)
        message = message_of(data)
        if not message:
            return json_error(400, "请填写推送内容")
        promotion_id = str(data.get("promotion_id") or "")
        promotion = await db(store().promotion, int(promotion_id)) if promotion_id.isdigit() else None
        if promotion is None:
            return json_error(400, "请选择一个进行中或即将开始的活动")
        send_at = utcnow()
        if data.get("send_at"):
            try:
                # The page sends China time (what the admin typed): stored as UTC.
                send_at = datetime.fromisoformat(str(data["send_at"])) - timedelta(hours=8)
            except ValueError:
                return json_error(400, "发送时间格式不对")
        campaign_id = await db(
            lambda: store().create_campaign(promotion["id"], audience, message, send_at, who.staff.id)
        )
        logger.info(
            "console: %s created campaign %s for %s", who.staff.name, campaign_id, json.dumps(audience.as_dict())
        )
        return as_json({"ok": True, "id": campaign_id})

    @app.post("/console/api/campaigns/<campaign_id:int>/cancel")
    @api(admin=True, changes=True)
    async def cancel(_: Request, who: Any, campaign_id: int) -> HTTPResponse:
        if not await db(store().cancel_campaign, campaign_id):
            return json_error(409, "该活动已结束或已取消")
        logger.info("console: %s cancelled campaign %s", who.staff.name, campaign_id)
        return as_json({"ok": True})
