"""The console's analytics dashboard (数据分析): its page, the figures as
JSON, every table as CSV, and the SQL broker consumer as a background task
of the web server. Agents and admins may open it: the figures are counts,
shares and masked message texts, nothing a signed-in agent cannot already
see in a conversation."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from kefu.analytics.consumer import SQLBrokerConsumer
from kefu.analytics.figures import CHINA_OFFSET, Period, compute
from kefu.analytics.report import TABLE_COLUMNS, csv_tables
from kefu.analytics.review import REVIEWED_NLU, ROOT, decide, export_reviewed, known_intents, unanswered
from kefu.db.engine import get_engine

logger = logging.getLogger(__name__)
PAGE = Path(__file__).resolve().parents[2] / "web" / "console" / "analytics.html"
LONGEST_RANGE_DAYS = 366


def _shown(path: Path) -> str:
    """A path as the admin knows it: relative to the project when inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def period_from(request: Request) -> Period | str:
    """The period the query asks for, or a message saying what is wrong."""
    today = (datetime.utcnow() + CHINA_OFFSET).date()
    try:
        last = date.fromisoformat(request.args.get("to") or today.isoformat())
        first = date.fromisoformat(request.args.get("from") or (last - timedelta(days=29)).isoformat())
    except ValueError:
        return "日期格式应为 YYYY-MM-DD"
    if last < first:
        return "结束日期早于开始日期"
    if (last - first).days >= LONGEST_RANGE_DAYS:
        return "日期范围最长一年"
    by = request.args.get("by") or "day"
    if by not in ("day", "week"):
        return "统计粒度只能是 day 或 week"
    return Period(first, last, by)


def register_dashboard(
    app: Sanic,
    *,
    api: Callable,
    signed_in: Callable,
    db: Callable,
    json_error: Callable[..., HTTPResponse],
    as_json: Callable[..., HTTPResponse],
) -> None:
    """Mount the dashboard on the console (`api`: the console's guard)."""

    def consumer() -> SQLBrokerConsumer:
        if getattr(app.ctx, "analytics_consumer", None) is None:
            app.ctx.analytics_consumer = SQLBrokerConsumer(get_engine())
        return app.ctx.analytics_consumer

    @app.before_server_start
    async def start_consumer(app_: Sanic, _loop: Any) -> None:
        # One web process (README): the consumer runs in it, polling the
        # broker's table. KEFU_ANALYTICS_CONSUMER=0 leaves it to
        # `python -m kefu.analytics.consumer`.
        if os.environ.get("KEFU_ANALYTICS_CONSUMER", "1") == "0":
            return
        try:
            running = await asyncio.to_thread(consumer)
        except Exception as exc:  # noqa: BLE001 - the chat page and console work without analytics
            logger.error("analytics consumer not started: %s", exc)
            return
        app_.add_task(running.run())

    async def figures_for(period: Period) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            # What was published until now counts, even between two polls.
            consumer().drain()
            return compute(get_engine(), period)

        return await db(work)

    @app.get("/console/analytics")
    async def analytics_page(request: Request) -> HTTPResponse:
        if await signed_in(request) is None:
            return response.redirect("/console/login")
        return await response.file(PAGE, mime_type="text/html; charset=utf-8")

    @app.get("/console/api/analytics")
    @api()
    async def analytics_figures(request: Request, who: Any) -> HTTPResponse:
        period = period_from(request)
        if isinstance(period, str):
            return json_error(400, period)
        return as_json(await figures_for(period))

    @app.get("/console/api/analytics/unanswered")
    @api(admin=True)
    async def analytics_unanswered(request: Request, who: Any) -> HTTPResponse:
        period = period_from(request)
        if isinstance(period, str):
            return json_error(400, period)
        groups = await db(unanswered, get_engine(), period)
        return as_json({"groups": groups, "intents": sorted(await db(known_intents))})

    @app.post("/console/api/analytics/review")
    @api(admin=True, changes=True)
    async def analytics_review(request: Request, who: Any) -> HTTPResponse:
        data = request.json if isinstance(request.json, dict) else {}
        normalized_text = str(data.get("normalized_text") or "")[:200]
        intent = data.get("intent") or None
        if not normalized_text:
            return json_error(400, "缺少要归类的消息")
        try:
            await db(
                lambda: decide(
                    get_engine(),
                    normalized_text,
                    intent=intent,
                    ignored=bool(data.get("ignored")),
                    staff_id=who.staff.id,
                )
            )
        except ValueError:
            return json_error(400, "没有这个意图")
        return as_json({"ok": True})

    @app.post("/console/api/analytics/export-reviewed")
    @api(admin=True, changes=True)
    async def analytics_export_reviewed(request: Request, who: Any) -> HTTPResponse:
        # The button of `kefu nlu export-reviewed`: the file the next `make train` reads.
        count = await db(export_reviewed, get_engine(), REVIEWED_NLU)
        logger.info("console: %s wrote %s reviewed examples to %s", who.staff.name, count, REVIEWED_NLU)
        return as_json({"ok": True, "examples": count, "path": _shown(REVIEWED_NLU)})

    @app.get("/console/api/analytics.csv")
    @api()
    async def analytics_csv(request: Request, who: Any) -> HTTPResponse:
        period = period_from(request)
        if isinstance(period, str):
            return json_error(400, period)
        table = request.args.get("table", "")
        if table not in TABLE_COLUMNS:
            return json_error(404, "没有这张表")
        text = csv_tables(await figures_for(period))[table]
        name = f"kefu-{table}-{period.first.isoformat()}-{period.last.isoformat()}.csv"
        return response.raw(
            ("\ufeff" + text).encode("utf-8"),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
