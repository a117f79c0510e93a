"""When a notice may go out: quiet hours for marketing, and WeChat's
customer-service message window. Pure functions of their inputs (times are
naive UTC, as stored; quiet hours are China time)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

CHINA = timedelta(hours=8)
# WeChat's rule for the customer-service message API (客服消息): within 48
# hours of the follower's last message, at most 5 messages.
WECHAT_WINDOW = timedelta(hours=48)
WECHAT_MAX_IN_WINDOW = 5


@dataclass(frozen=True)
class QuietHours:
    """Marketing waits from `start` to `end` o'clock China time (22 → 8 by
    default; KEFU_QUIET_HOURS="22-8", or "" for none)."""

    start: int = 22
    end: int = 8

    @classmethod
    def from_env(cls) -> QuietHours | None:
        value = os.environ.get("KEFU_QUIET_HOURS", "22-8").strip()
        if not value:
            return None
        start, _, end = value.partition("-")
        hours = cls(int(start), int(end))
        if not (0 <= hours.start <= 23 and 0 <= hours.end <= 23):
            raise ValueError(f"KEFU_QUIET_HOURS={value!r}: hours are 0-23, like 22-8")
        return hours

    def is_quiet(self, moment_utc: datetime) -> bool:
        hour = (moment_utc + CHINA).hour
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= hour < self.end
        return hour >= self.start or hour < self.end

    def next_allowed(self, moment_utc: datetime) -> datetime:
        """`moment_utc` itself outside quiet hours, else the end of them (UTC)."""
        if not self.is_quiet(moment_utc):
            return moment_utc
        local = moment_utc + CHINA
        end = local.replace(hour=self.end, minute=0, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end - CHINA


def wechat_refusal(now: datetime, last_message_at: datetime | None, sent_since: int) -> str | None:
    """Why WeChat would refuse a customer-service message now, or None."""
    if last_message_at is None:
        return "wechat_never_wrote"
    if now - last_message_at > WECHAT_WINDOW:
        return "wechat_window_closed"
    if sent_since >= WECHAT_MAX_IN_WINDOW:
        return "wechat_window_full"
    return None


def retry_delay(attempts: int) -> timedelta:
    """Back-off after a temporary failure: 10 s, 40 s, 160 s, … at most 30 min."""
    return timedelta(seconds=min(1800, 10 * 4 ** max(0, attempts - 1)))
