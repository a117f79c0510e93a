"""The job queue beside the bot: dramatiq over Redis (KEFU_QUEUE_URL, else
REDIS_URL, else redis://127.0.0.1:6379/0).

Jobs (dramatiq actors, queue "kefu-notices"):
- `tick`: one round of the triggers (new shipment events, ticket changes,
  unpaid orders), due campaigns, and notices whose job was lost; sent every
  KEFU_NOTICE_POLL_SECONDS by the worker's scheduler thread.
- `expand_campaign(id)`: writes the campaign's outbox rows (one statement),
  then queues their deliveries in batches.
- `deliver(ids)`: sends a batch of notices (kefu.notices.delivery); a
  temporary failure is queued again with a delay (back-off), and dramatiq's
  own Retries middleware re-runs a job that raised (the database was away).

The queue carries only notice ids: what to send and whether it was sent is
in the outbox, so a lost or repeated job costs nothing but a look-up."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from kefu.db.engine import utcnow
from kefu.notices.delivery import Deliverer, WeChatApiSender
from kefu.notices.rules import QuietHours
from kefu.notices.store import NoticeStore
from kefu.notices.templates import render
from kefu.notices.triggers import Triggers

logger = logging.getLogger(__name__)

QUEUE = "kefu-notices"
BATCH = 500
CLAIM_CHUNK = 50


def queue_url() -> str:
    return os.environ.get("KEFU_QUEUE_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def make_broker(url: str | None = None) -> dramatiq.Broker:
    """The Redis broker ("stub://" gives dramatiq's in-memory broker, for tests)."""
    url = url or queue_url()
    if url == "stub://":
        return StubBroker()
    # A worker killed with jobs in hand: another worker's maintenance puts
    # them back once its heartbeat is this old (the outbox sweep is the
    # second net).
    namespace = os.environ.get("KEFU_QUEUE_NAMESPACE", "kefu-dramatiq")
    return RedisBroker(url=url, namespace=namespace, heartbeat_timeout=30_000)


@dataclass
class Jobs:
    """The actors bound to one broker, and what they work with."""

    broker: dramatiq.Broker
    store: NoticeStore
    deliverer: Deliverer
    triggers: Triggers
    tick: Any = None
    deliver: Any = None
    expand_campaign: Any = None
    requeue_after_seconds: float = 120.0

    def enqueue(self, notice_ids: list[int]) -> None:
        """Queue deliveries in batches, and note that they are queued."""
        for start in range(0, len(notice_ids), BATCH):
            chunk = notice_ids[start : start + BATCH]
            self.store.mark_queued(chunk)
            self.deliver.send(chunk)


def declare(
    broker: dramatiq.Broker | None = None, store: NoticeStore | None = None, deliverer: Deliverer | None = None
) -> Jobs:
    broker = broker or make_broker()
    store = store or NoticeStore()
    deliverer = deliverer or Deliverer(store, WeChatApiSender.from_env(), QuietHours.from_env())
    jobs = Jobs(
        broker,
        store,
        deliverer,
        Triggers(store),
        requeue_after_seconds=float(os.environ.get("KEFU_NOTICE_REQUEUE_SECONDS", "120")),
    )

    def tick() -> None:
        created = jobs.triggers.poll()
        jobs.enqueue(created)
        for campaign_id in store.due_campaigns():
            jobs.expand_campaign.send(campaign_id)
        lost = store.lost(jobs.requeue_after_seconds)
        if created:
            logger.info("notices: %s new from the shop database", len(created))
        if lost:
            logger.info("notices: %s due notices queued again (jobs lost, or posted by the shop)", len(lost))
        jobs.enqueue(lost)

    def expand_campaign(campaign_id: int) -> None:
        campaign = next((c for c in store.campaigns(1000) if c["id"] == campaign_id), None)
        if campaign is None:
            return
        quiet = deliverer.quiet
        now = utcnow()
        messages = render("utter_notice_campaign", message=campaign["message"])
        written = store.expand_campaign(campaign_id, messages, quiet.next_allowed(now) if quiet else now)
        if written is None:
            return
        logger.info("notices: campaign %s: %s notices written", campaign_id, written)
        jobs.enqueue(store.due(limit=10**7, campaign_id=campaign_id))
        store.campaign_finished(campaign_id)  # an empty audience is done at once

    def deliver(notice_ids: list[int]) -> None:
        campaigns = set()
        # Claimed CLAIM_CHUNK at a time: the lease (60 s) must outlast the
        # sending of a whole chunk, one WeChat call after another.
        for start in range(0, len(notice_ids), CLAIM_CHUNK):
            for outcome in deliverer.deliver_many(notice_ids[start : start + CLAIM_CHUNK]):
                if outcome.result == "retry" and outcome.retry_at is not None:
                    delay_ms = max(0, int((outcome.retry_at - utcnow()).total_seconds() * 1000))
                    store.mark_queued([outcome.notice_id])
                    jobs.deliver.send_with_options(args=([outcome.notice_id],), delay=delay_ms)
                if outcome.campaign_id is not None:
                    campaigns.add(outcome.campaign_id)
        for campaign_id in campaigns:
            store.campaign_finished(campaign_id)

    def actor(name: str):
        # dramatiq's Retries middleware: a job that raised (the database away)
        # runs again after 1 s, 2 s, 4 s, … at most 5 min, 5 times.
        return dramatiq.actor(
            actor_name=name, broker=broker, queue_name=QUEUE, max_retries=5, min_backoff=1_000, max_backoff=300_000
        )

    jobs.tick = actor("kefu_notices_tick")(tick)
    jobs.deliver = actor("kefu_notices_deliver")(deliver)
    jobs.expand_campaign = actor("kefu_notices_expand_campaign")(expand_campaign)
    return jobs
