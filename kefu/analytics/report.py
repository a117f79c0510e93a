"""`kefu report`: the figures of a date range as one self-contained HTML file
(ECharts, the chart code and the figures inlined: it opens offline) or as
CSV (one file per table, or a single table)."""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ECHARTS = ROOT / "web" / "static" / "vendor" / "echarts.min.js"
CHARTS_JS = ROOT / "web" / "console" / "static" / "analytics-charts.js"
STYLE = ROOT / "web" / "console" / "static" / "analytics.css"

# Columns of each table, for a header even when a range has no rows.
TABLE_COLUMNS: dict[str, list[str]] = {
    "totals": ["figure", "value"],
    "conversations_by_bucket": [
        "bucket",
        "channel",
        "conversations",
        "user_messages",
        "customers",
        "bot_settled",
        "handed_off",
        "fallbacks",
    ],
    "handoff_reasons": ["reason", "handoffs"],
    "not_understood": ["normalized_text", "example", "times", "customers"],
    "intents": ["intent", "messages"],
    "products": ["product", "messages"],
    "categories": ["category", "messages"],
    "order_lookups": ["action", "outcome", "times"],
    "tickets": ["kind", "status", "tickets"],
    "ticket_reasons": ["kind", "reason", "tickets"],
    "refusals": ["action", "rule", "times"],
    "csat_distribution": ["score", "ratings"],
    "csat_by_agent": ["staff_id", "agent", "ratings", "average"],
    "busy_hours": ["weekday", "hour", "user_messages"],
}


def csv_tables(figures: dict[str, Any]) -> dict[str, str]:
    """Every table as CSV text (UTF-8 with a BOM when written, for Excel)."""
    tables: dict[str, str] = {}
    for name, columns in TABLE_COLUMNS.items():
        rows = (
            [{"figure": k, "value": v} for k, v in figures["totals"].items()]
            if name == "totals"
            else figures.get(name, [])
        )
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        tables[name] = out.getvalue()
    return tables


def _inline_script(code: str) -> str:
    # A "</script" inside inlined code would end the element early.
    return code.replace("</script", "<\\/script")


def html_report(figures: dict[str, Any]) -> str:
    period = figures["period"]
    data = json.dumps(figures, ensure_ascii=False).replace("</", "<\\/")
    title = f"客服数据报告 {period['from']} 至 {period['to']}"
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE.read_text(encoding="utf-8")}</style></head>
<body class="analytics report">
<header class="report-head"><h1>{html.escape(title)}</h1>
<p>按{"周" if period["by"] == "week" else "日"}统计 · 中国时间 · 生成于 {made} ·
指标定义见 docs/analytics.md</p></header>
<section id="kpis" class="kpis"></section>
<section id="charts" class="charts"></section>
<section id="tables" class="tables"></section>
<script id="figures" type="application/json">{data}</script>
<script>{_inline_script(ECHARTS.read_text(encoding="utf-8"))}</script>
<script>{_inline_script(CHARTS_JS.read_text(encoding="utf-8"))}</script>
<script>
(function () {{
  var figures = JSON.parse(document.getElementById("figures").textContent);
  KefuAnalytics.renderKpis(figures, document.getElementById("kpis"));
  KefuAnalytics.renderCharts(figures, document.getElementById("charts"));
  KefuAnalytics.renderTables(figures, document.getElementById("tables"));
  document.body.setAttribute("data-drawn", "1");
}})();
</script>
</body></html>
"""
