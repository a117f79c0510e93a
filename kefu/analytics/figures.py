"""Every figure of the dashboard and the report, for a date range, from the
analytics tables joined with the shop's own tables (tickets, ratings,
hand-off claims, the audit log). Definitions: docs/analytics.md.

Days are China days (UTC+8): times are stored in UTC. A range is inclusive
of both dates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine

from kefu.db.models import HandoffRequest

CHINA_OFFSET = timedelta(hours=8)
LOOKUP_ACTIONS = ("verify_phone_tail", "find_order", "find_order_by_tracking_no", "lock_order_lookups")
TOP_N = 20
REPORT_STATEMENT_TIMEOUT_MS = 60_000
SORT_FEWER_THAN = 50_000  # reply times: below this many, sorting them beats the index walk


@dataclass(frozen=True)
class Period:
    first: date
    last: date  # inclusive
    by: str = "day"  # day | week

    @property
    def start_utc(self) -> datetime:
        return datetime.combine(self.first, datetime.min.time()) - CHINA_OFFSET

    @property
    def end_utc(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), datetime.min.time()) - CHINA_OFFSET

    def params(self) -> dict[str, Any]:
        return {"start": self.start_utc, "end": self.end_utc}


def _rows(connection: Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in connection.execute(text(sql), params).mappings()]


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _reply_percentiles(db: Connection, p: dict[str, Any], answered: int) -> tuple[float | None, float | None]:
    """p50 and p95 of the reply times by nearest rank (the smallest time with
    at least that share of the times at or below it), exact: the time at that
    rank, read along the (response_seconds, at) index, with no sort of a month
    of rows."""
    if not answered:
        return None, None
    # SQLite would rather read the time index and sort; "+at" keeps it on the
    # reply-time index when the range holds many replies (few: the sort is cheap,
    # and the reply-time index would be read across every month of the store).
    at = "+at" if db.dialect.name == "sqlite" and answered > SORT_FEWER_THAN else "at"
    nth = text(f"""
        SELECT response_seconds FROM analytics_user_turns
        WHERE response_seconds IS NOT NULL AND {at} >= :start AND {at} < :end
        ORDER BY response_seconds LIMIT 1 OFFSET :skip""")
    result = []
    for fraction in (0.50, 0.95):
        rank = max(1, math.ceil(round(fraction * answered, 9)))
        result.append(round(db.execute(nth, {**p, "skip": rank - 1}).scalar_one(), 3))
    return result[0], result[1]


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def compute(engine: Engine, period: Period) -> dict[str, Any]:
    p = period.params()
    # Kept China-time columns (kefu.analytics.store): no date function per row.
    bucket = "local_week" if period.by == "week" else "local_day"
    with engine.connect() as db:
        if db.dialect.name == "postgresql":
            # A month of a busy shop is heavier than the shop's look-ups that
            # the engine's 5 s statement timeout is made for.
            db.execute(text(f"SET LOCAL statement_timeout = {REPORT_STATEMENT_TIMEOUT_MS}"))
            # Compiling each query (JIT) cost more than it saved here (0.1 s a query).
            db.execute(text("SET LOCAL jit = off"))
        # Conversations count once a customer said something.
        conversations = _rows(
            db,
            f"""
            SELECT {bucket} AS bucket, channel, COUNT(*) AS conversations,
                   COUNT(DISTINCT sender_id) AS customers,
                   SUM(CASE WHEN NOT handed_off AND NOT two_fallbacks_in_row THEN 1 ELSE 0 END) AS bot_settled,
                   SUM(CASE WHEN handed_off THEN 1 ELSE 0 END) AS handed_off
            FROM analytics_conversations
            WHERE started_at >= :start AND started_at < :end AND user_turns > 0
            GROUP BY 1, 2 ORDER BY 1, 2""",
            p,
        )
        messages, totals_row, intents, products, categories, heat = _message_figures(
            _message_groups(db, period), by_week=period.by == "week"
        )
        # Customers are counted from the conversations (a third of the rows
        # of the messages, one index): the senders of the conversations counted.
        customers = db.execute(
            text("""
            SELECT COUNT(DISTINCT sender_id) FROM analytics_conversations
            WHERE started_at >= :start AND started_at < :end AND user_turns > 0"""),
            p,
        ).scalar()
        handoff_reasons = _rows(
            db,
            """
            SELECT reason, COUNT(*) AS handoffs FROM analytics_handoffs
            WHERE at >= :start AND at < :end GROUP BY reason ORDER BY 2 DESC, 1""",
            p,
        )
        # Typed columns: SQLite hands raw SQL datetimes back as strings.
        waits = [
            (claimed - created).total_seconds()
            for created, claimed in db.execute(
                select(HandoffRequest.created_at, HandoffRequest.claimed_at).where(
                    HandoffRequest.created_at >= period.start_utc,
                    HandoffRequest.created_at < period.end_utc,
                    HandoffRequest.claimed_at.is_not(None),
                )
            )
        ]
        not_understood = _rows(
            db,
            f"""
            SELECT normalized_text, MIN(text) AS example, COUNT(*) AS times,
                   COUNT(DISTINCT sender_id) AS customers
            FROM analytics_user_turns WHERE is_fallback AND at >= :start AND at < :end
            GROUP BY normalized_text ORDER BY 3 DESC, 1 LIMIT {TOP_N * 5}""",
            p,
        )
        lookups = _rows(
            db,
            f"""
            SELECT action, outcome, COUNT(*) AS times FROM audit_log
            WHERE happened_at >= :start AND happened_at < :end
              AND action IN ({", ".join(f"'{a}'" for a in LOOKUP_ACTIONS)})
            GROUP BY action, outcome ORDER BY action, 3 DESC""",
            p,
        )
        tickets = _rows(
            db,
            """
            SELECT kind, status, COUNT(*) AS tickets FROM aftersales_tickets
            WHERE created_at >= :start AND created_at < :end GROUP BY kind, status ORDER BY kind, status""",
            p,
        )
        ticket_reasons = _rows(
            db,
            """
            SELECT kind, reason, COUNT(*) AS tickets FROM aftersales_tickets
            WHERE created_at >= :start AND created_at < :end GROUP BY kind, reason ORDER BY 3 DESC, 1, 2""",
            p,
        )
        refusals = _rows(
            db,
            """
            SELECT action, substr(outcome, 9) AS rule, COUNT(*) AS times FROM audit_log
            WHERE happened_at >= :start AND happened_at < :end AND outcome LIKE 'refused:%'
            GROUP BY action, outcome ORDER BY 3 DESC, 1, 2""",
            p,
        )
        ratings = _rows(
            db,
            """
            SELECT score, COUNT(*) AS ratings FROM satisfaction_ratings
            WHERE created_at >= :start AND created_at < :end GROUP BY score ORDER BY score""",
            p,
        )
        per_agent = (
            _rows(
                db,
                """
            SELECT r.staff_id AS staff_id, COALESCE(s.name, '') AS agent, COUNT(*) AS ratings,
                   ROUND(AVG(r.score * 1.0), 2) AS average
            FROM satisfaction_ratings r LEFT JOIN staff_accounts s ON s.id = r.staff_id
            WHERE r.created_at >= :start AND r.created_at < :end AND r.staff_id IS NOT NULL
            GROUP BY r.staff_id, s.name ORDER BY 3 DESC, 2""",
                p,
            )
            if _has_table(db, "staff_accounts")
            else []
        )
        p50, p95 = _reply_percentiles(db, p, int(totals_row["answered"]))

    total_conversations = sum(int(r["conversations"]) for r in conversations)
    bot_settled = sum(int(r["bot_settled"] or 0) for r in conversations)
    handed_off = sum(int(r["handed_off"] or 0) for r in conversations)
    user_messages = int(totals_row["user_messages"])
    fallbacks = int(totals_row["fallbacks"])
    rating_count = sum(int(r["ratings"]) for r in ratings)
    distribution = {score: 0 for score in range(1, 6)}
    for row in ratings:
        distribution[int(row["score"])] = int(row["ratings"])
    return {
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat(), "by": period.by},
        "totals": {
            "conversations": total_conversations,
            "user_messages": user_messages,
            "customers": int(customers or 0),
            "bot_settled": bot_settled,
            "bot_settled_share": _share(bot_settled, total_conversations),
            "handed_off": handed_off,
            "handoff_rate": _share(handed_off, total_conversations),
            "median_wait_seconds": _median(waits),
            "claimed_handoffs": len(waits),
            "fallbacks": fallbacks,
            "fallback_rate": _share(fallbacks, user_messages),
            "ratings": rating_count,
            "csat_average": round(sum(s * n for s, n in distribution.items()) / rating_count, 2)
            if rating_count
            else None,
            # The bot invites one rating per conversation: a rating is a rated conversation.
            "rating_share": _share(min(rating_count, total_conversations), total_conversations),
            "response_p50_seconds": p50,
            "response_p95_seconds": p95,
        },
        "conversations_by_bucket": _merge_buckets(conversations, messages),
        "handoff_reasons": handoff_reasons,
        "not_understood": not_understood,
        "intents": intents,
        "products": products[:TOP_N],
        "categories": categories[:TOP_N],
        "order_lookups": lookups,
        "tickets": tickets,
        "ticket_reasons": ticket_reasons,
        "refusals": refusals,
        "csat_distribution": [{"score": s, "ratings": n} for s, n in distribution.items()],
        "csat_by_agent": per_agent,
        "busy_hours": heat,
    }


def _message_groups(db: Connection, period: Period) -> list[Any]:
    """Every message figure in one pass, the rows grouped by every dimension a
    figure needs (tens of thousands of groups for a month), read in the order
    of ix_analytics_user_turns_by_day so that the database groups as it reads,
    with no sort (a range of China days is a range of `local_day`). Summed up,
    and into weeks, in _message_figures. Six passes, or this one over the
    time index, took 3-10 times as long (BENCHMARKS.md)."""
    return list(
        db.execute(
            text("""
            SELECT local_day AS bucket, channel, intent, weekday, local_hour, is_fallback, products, categories,
                   COUNT(*) AS n, COUNT(response_seconds) AS answered
            FROM analytics_user_turns WHERE local_day >= :first AND local_day <= :last
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"""),
            {"first": period.first.isoformat(), "last": period.last.isoformat()},
        ).all()
    )


def _message_figures(
    groups: list[Any], *, by_week: bool = False
) -> tuple[list[dict[str, Any]], dict[str, int], list, list, list, list]:
    """Messages by bucket and channel, totals, intents, products, categories
    and busy hours, from the rows of the one grouped pass."""
    by_bucket: dict[tuple[str, str], dict[str, Any]] = {}
    intents: dict[str, int] = {}
    products: dict[str, int] = {}
    categories: dict[str, int] = {}
    heat: dict[tuple[int, int], int] = {}
    totals = {"user_messages": 0, "fallbacks": 0, "answered": 0}
    for g in groups:
        n, fallback = int(g.n), bool(g.is_fallback)
        day = str(g.bucket)
        bucket = _monday(day) if by_week else day
        entry = by_bucket.setdefault(
            (bucket, g.channel), {"bucket": bucket, "channel": g.channel, "user_messages": 0, "fallbacks": 0}
        )
        entry["user_messages"] += n
        entry["fallbacks"] += n if fallback else 0
        totals["user_messages"] += n
        totals["fallbacks"] += n if fallback else 0
        totals["answered"] += int(g.answered)
        intents[g.intent] = intents.get(g.intent, 0) + n
        heat[(int(g.weekday), int(g.local_hour))] = heat.get((int(g.weekday), int(g.local_hour)), 0) + n
        for names, counts in ((g.products, products), (g.categories, categories)):
            for name in str(names or "").split("|") if names else ():
                counts[name] = counts.get(name, 0) + n

    def ranked(counts: dict[str, int], label: str, value: str) -> list[dict[str, Any]]:
        return [{label: k, value: v} for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    return (
        [by_bucket[key] for key in sorted(by_bucket)],
        totals,
        ranked(intents, "intent", "messages"),
        ranked(products, "product", "messages"),
        ranked(categories, "category", "messages"),
        [{"weekday": w, "hour": h, "user_messages": heat[(w, h)]} for w, h in sorted(heat)],
    )


def _monday(day: str) -> str:
    """The week (its Monday) of a China day, as store.china_time_columns keeps it."""
    d = date.fromisoformat(day)
    return (d - timedelta(days=d.weekday())).isoformat()


def _has_table(db: Connection, name: str) -> bool:
    from sqlalchemy import inspect

    return inspect(db).has_table(name)


def _merge_buckets(conversations: list[dict[str, Any]], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (bucket, channel) with the conversation and message figures."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in conversations:
        key = (str(row["bucket"]), row["channel"])
        merged[key] = {
            "bucket": key[0],
            "channel": key[1],
            "conversations": int(row["conversations"]),
            "customers": int(row["customers"]),
            "bot_settled": int(row["bot_settled"] or 0),
            "handed_off": int(row["handed_off"] or 0),
            "user_messages": 0,
            "fallbacks": 0,
        }
    for row in messages:
        key = (str(row["bucket"]), row["channel"])
        entry = merged.setdefault(
            key,
            {
                "bucket": key[0],
                "channel": key[1],
                "conversations": 0,
                "customers": 0,
                "bot_settled": 0,
                "handed_off": 0,
            },
        )
        entry.update(user_messages=int(row["user_messages"]), fallbacks=int(row["fallbacks"] or 0))
    return [merged[key] for key in sorted(merged)]
