"""Notices to customers (通知与营销推送): consent, the outbox, triggers from
the shop database, campaigns, and delivery on a job queue (dramatiq over
Redis) beside the bot. docs/notices.md tells the whole story."""
