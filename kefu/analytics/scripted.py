"""Conversation events as Rasa's tracker store publishes them to the event
broker, for scripted conversations: the demo month and the tests replay
these through the broker table and the real consumer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass
class Turn:
    text: str
    intent: str
    confidence: float = 0.95
    products: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    reply_after: float = 0.3  # seconds before the bot's first reply
    handoff_reason: str | None = None


@dataclass
class Script:
    sender_id: str
    started_at: datetime  # naive UTC
    turns: list[Turn] = field(default_factory=list)
    gap_seconds: float = 20.0  # between one turn and the next customer message
    input_channel: str = "rest"


def _ts(moment: datetime) -> float:
    return moment.replace(tzinfo=timezone.utc).timestamp()


def script_events(script: Script) -> list[dict[str, Any]]:
    """The events, in the order the tracker store publishes them."""
    sender = script.sender_id
    t = _ts(script.started_at)
    events: list[dict[str, Any]] = [
        {"sender_id": sender, "event": "action", "timestamp": t - 0.002, "name": "action_session_start"},
        {"sender_id": sender, "event": "session_started", "timestamp": t - 0.001},
        {"sender_id": sender, "event": "action", "timestamp": t - 0.0005, "name": "action_listen"},
    ]
    for index, turn in enumerate(script.turns):
        user_at = t + index * script.gap_seconds
        entities = [{"entity": "product", "value": name} for name in turn.products] + [
            {"entity": "category", "value": name} for name in turn.categories
        ]
        events.append(
            {
                "sender_id": sender,
                "event": "user",
                "timestamp": user_at,
                "text": turn.text,
                "input_channel": script.input_channel,
                "message_id": f"{sender}-{index}",
                "parse_data": {
                    "intent": {"name": turn.intent, "confidence": turn.confidence},
                    "entities": entities,
                    "text": turn.text,
                },
            }
        )
        events.append(
            {
                "sender_id": sender,
                "event": "action",
                "timestamp": user_at + turn.reply_after * 0.9,
                "name": "action_handoff" if turn.handoff_reason else "utter_reply",
            }
        )
        events.append(
            {
                "sender_id": sender,
                "event": "bot",
                "timestamp": user_at + turn.reply_after,
                "text": "（回复）",
                "data": {},
            }
        )
        if turn.handoff_reason:
            events.append(
                {
                    "sender_id": sender,
                    "event": "slot",
                    "timestamp": user_at + turn.reply_after + 0.001,
                    "name": "handoff_reason",
                    "value": turn.handoff_reason,
                }
            )
        events.append(
            {
                "sender_id": sender,
                "event": "action",
                "timestamp": user_at + turn.reply_after + 0.002,
                "name": "action_listen",
            }
        )
    return events
