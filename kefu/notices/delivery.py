"""Sending one notice: consent, quiet hours, the customer's channel and
WeChat's window, then the send, and one send-log row whatever happened.

- A customer bound to a WeChat openid (and a configured WeChat account) is
  reached through the customer-service message API, only within 48 hours of
  their last message and at most 5 messages in that window; otherwise the
  notice is skipped with the reason.
- Anyone else is a web customer: the notice is kept ('sent', channel web)
  and kefu.web pushes it to their open chat page, or shows it when they
  next open it ('delivered').
- A temporary failure is retried with back-off (rules.retry_delay), at most
  MAX_ATTEMPTS tries; a refusal is final.

A notice is claimed before it is sent (store.claim: one worker at a time,
with a lease), so a retry of the job, a second worker or a restart never
sends it twice. WeChat's 5 messages per window are slots taken in the
database before the send (store.take_wechat_slot), so two threads or
workers sending to one follower at once never exceed 5. The one gap left is a worker killed between WeChat's
answer and the write of 'sent': that notice is sent again when its lease
runs out (at most once more)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from kefu.channels.wechat_text import render_text
from kefu.db.engine import utcnow
from kefu.notices.rules import WECHAT_MAX_IN_WINDOW, QuietHours, retry_delay, wechat_refusal
from kefu.notices.store import NoticeRow, NoticeStore, Situation

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# WeChat's error codes that mean "not now, not ever for this message".
WECHAT_REFUSALS = {
    45015: "wechat_window_closed",  # response out of time limit
    45047: "wechat_window_full",  # out of response count limit
    43004: "wechat_unfollowed",  # require subscribe
    40003: "wechat_bad_openid",
}


class WeChatSender(Protocol):
    def send_text(self, openid: str, text: str) -> None: ...


class WeChatApiSender:
    """The customer-service message API through wechatpy (blocking: the
    worker's threads call it); the access token is shared with the bot's
    WeChat channel (kefu.channels.wechat_state)."""

    def __init__(self, app_id: str, app_secret: str, redis_url: str | None = None) -> None:
        from wechatpy import WeChatClient

        from kefu.channels.wechat_state import AccessTokenStorage, state_store

        self._client = WeChatClient(app_id, app_secret, session=AccessTokenStorage(state_store(redis_url)))

    def send_text(self, openid: str, text: str) -> None:
        self._client.message.send_text(openid, text)

    @classmethod
    def from_env(cls) -> WeChatApiSender | None:
        app_id, secret = os.environ.get("WECHAT_APP_ID"), os.environ.get("WECHAT_APP_SECRET")
        if not (app_id and secret):
            return None
        return cls(app_id, secret, os.environ.get("REDIS_URL") or None)


# _send's default: no slot taken for the message yet.
_TAKE = object()


@dataclass(frozen=True)
class Outcome:
    notice_id: int
    result: str  # sent | kept | skipped | postponed | retry | failed | cancelled | not_claimed
    reason: str | None = None
    retry_at: datetime | None = None
    campaign_id: int | None = None


class Deliverer:
    def __init__(
        self,
        store: NoticeStore,
        wechat: WeChatSender | None = None,
        quiet: QuietHours | None = None,
        clock: Callable[[], datetime] = utcnow,
        lease_seconds: float | None = None,
    ) -> None:
        self.store, self.wechat, self.quiet, self.clock = store, wechat, quiet, clock
        # How long a claimed notice is this worker's: a worker killed while
        # sending leaves it to another after that (KEFU_NOTICE_LEASE_SECONDS).
        self.lease_seconds = lease_seconds or float(os.environ.get("KEFU_NOTICE_LEASE_SECONDS", "60"))

    def deliver(self, notice_id: int) -> Outcome:
        """Send one notice (claim, check, send, finish)."""
        notice = self.store.claim(notice_id, self.lease_seconds)
        if notice is None:
            return Outcome(notice_id, "not_claimed")
        return self._send(notice, self.store.situation(notice), batch=None)

    def deliver_many(self, notice_ids: list[int]) -> list[Outcome]:
        """deliver() for a batch: claimed, checked and (on the web) finished
        together, a few transactions per batch instead of three per notice.
        A WeChat message is still finished one by one, right after WeChat
        answered; the batch counts what it sends to each follower against
        their window."""
        notices = self.store.claim_many(notice_ids, self.lease_seconds)
        situations = self.store.situations(notices)
        taken = {n.id for n in notices}
        outcomes = [Outcome(i, "not_claimed") for i in notice_ids if i not in taken]
        batch: list[dict] = []
        sent_here: dict[str, int] = {}
        # The window slots of the batch's WeChat messages, taken in one
        # transaction; those of messages not sent after all are given back
        # together at the end.
        followers = [
            (situations[n.id].openid, n.id) for n in notices if situations[n.id].openid and self.wechat is not None
        ]
        slots = self.store.take_wechat_slots(
            [(openid, notice_id) for openid, notice_id in followers if openid], WECHAT_MAX_IN_WINDOW
        )
        unused: list[tuple[str, int]] = []
        for notice in notices:
            situation = situations[notice.id]
            if situation.openid and self.wechat is not None:
                openid = situation.openid
                situation = replace(situation, sent_since=situation.sent_since + sent_here.get(openid, 0))
                outcome = self._send(notice, situation, batch=None, slot=slots[notice.id])
                if outcome.result == "sent":
                    sent_here[openid] = sent_here.get(openid, 0) + 1
                elif slots[notice.id] is not None:
                    unused.append((openid, notice.id))
                outcomes.append(outcome)
            else:
                outcomes.append(self._send(notice, situation, batch=batch))
        self.store.finish_many(batch)
        self.store.release_wechat_slots(unused)
        return outcomes

    def _send(
        self, notice: NoticeRow, situation: Situation, batch: list[dict] | None, slot: int | None | object = _TAKE
    ) -> Outcome:
        """Decide and send; the end of the try is written now, or added to
        `batch`. `slot`: the WeChat window slot deliver_many took for it
        (None: none was free), or _TAKE to take one here."""
        notice_id, campaign = notice.id, notice.campaign_id
        now = self.clock()
        openid = situation.openid
        channel = "wechat" if openid and self.wechat is not None else "web"
        address = openid if channel == "wechat" else None

        def end(status: str, outcome: str, reason: str | None = None, detail: str = "", **kw: Any) -> None:
            record = dict(
                notice_id=notice_id,
                status=status,
                channel=channel,
                outcome=outcome,
                reason=reason,
                address=address,
                detail=detail or (reason or ""),
                **kw,
            )
            if batch is None:
                self.store.finish(**record)
            else:
                batch.append(record)
            log = logger.info if outcome in ("sent", "kept") else logger.warning
            log(
                "notice %s (%s, customer %s) %s via %s%s",
                notice_id,
                notice.topic,
                notice.customer_id,
                outcome,
                channel,
                f": {reason}" if reason else "",
            )

        if not situation.campaign_running:
            end("cancelled", "skipped", "campaign_cancelled")
            return Outcome(notice_id, "cancelled", "campaign_cancelled", campaign_id=campaign)
        if not situation.consented:
            end("skipped", "skipped", "opted_out")
            return Outcome(notice_id, "skipped", "opted_out", campaign_id=campaign)
        if notice.kind == "marketing" and self.quiet is not None and self.quiet.is_quiet(now):
            later = self.quiet.next_allowed(now)
            end("pending", "postponed", "quiet_hours", not_before=later)
            return Outcome(notice_id, "postponed", "quiet_hours", later, campaign_id=campaign)
        if channel == "web":
            end("sent", "kept")
            return Outcome(notice_id, "kept", campaign_id=campaign)

        assert openid is not None and self.wechat is not None
        refusal = wechat_refusal(now, situation.last_message_at, situation.sent_since)
        if refusal is not None:
            end("skipped", "skipped", refusal)
            return Outcome(notice_id, "skipped", refusal, campaign_id=campaign)
        # The count above was read without a lock: another thread may be
        # sending to this follower now. The slot is the atomic check.
        if slot is _TAKE:
            slot = self.store.take_wechat_slot(openid, notice_id, WECHAT_MAX_IN_WINDOW)
        if slot is None:
            end("skipped", "skipped", "wechat_window_full", detail="no free slot in the window")
            return Outcome(notice_id, "skipped", "wechat_window_full", campaign_id=campaign)
        try:
            self.wechat.send_text(openid, render_text(notice.messages))
        except Exception as exc:  # noqa: BLE001 - every failure is logged and classified below
            self.store.release_wechat_slot(openid, notice_id)
            code = getattr(exc, "errcode", None)
            if code in WECHAT_REFUSALS:
                end("skipped", "skipped", WECHAT_REFUSALS[code], detail=f"{code}: {exc}")
                return Outcome(notice_id, "skipped", WECHAT_REFUSALS[code], campaign_id=campaign)
            detail = f"{type(exc).__name__}: {exc}"
            if notice.attempts >= MAX_ATTEMPTS:
                end("failed", "failed", "gave_up", detail=detail)
                return Outcome(notice_id, "failed", "gave_up", campaign_id=campaign)
            later = now + retry_delay(notice.attempts)
            end("pending", "retry", "temporary_error", detail=detail, not_before=later)
            return Outcome(notice_id, "retry", "temporary_error", later, campaign_id=campaign)
        end("sent", "sent")
        return Outcome(notice_id, "sent", campaign_id=campaign)
