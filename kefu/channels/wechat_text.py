"""Bot messages as WeChat text, without importing Rasa (the notice worker
uses it too)."""

from __future__ import annotations

from typing import Any


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
