"""The analytics tables: a read model derived from the event stream.

They live in the shop database (so that tickets, ratings, hand-off claims and
the audit log are joined, not copied) but on their own metadata: they are
rebuildable from the broker's events at any time (drop them and reset the
cursor), so they are created when missing rather than versioned with the
shop schema.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

# Where each event source has been read up to (the high-water mark). It is
# written in the same transaction as the rows the events produced: a crash
# before the commit re-reads the batch, after it nothing is read twice.
cursors = Table(
    "analytics_cursors",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# Rasa's SQL event broker table (kefu.analytics.broker); declared here too so
# that the consumer and the tests can read it without Rasa.
broker_events = Table(
    "analytics_broker_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255)),
    Column("data", Text),
)

# One row per conversation: a Rasa session of one sender (a new session
# after an hour of silence is a new conversation).
conversations = Table(
    "analytics_conversations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("last_event_at", DateTime, nullable=False),
    Column("channel", String(32), nullable=False, default="web"),
    # The sender, or 'customer:<id>' once a message of the conversation
    # carried a valid customer token (writer.customer_of): what a campaign's
    # conversions join on (kefu/notices/store.py).
    Column("customer_key", String(255), nullable=False),
    Column("user_turns", Integer, nullable=False, default=0),
    Column("fallback_turns", Integer, nullable=False, default=0),
    # Two nlu_fallback user turns with no other user turn between them.
    Column("fallback_streak", Integer, nullable=False, default=0),
    Column("two_fallbacks_in_row", Boolean, nullable=False, default=False),
    Column("handed_off", Boolean, nullable=False, default=False),
    # China-time day and week (Monday) of started_at, kept so that grouping
    # a month of rows calls no date function per row.
    Column("local_day", String(10), nullable=False),
    Column("local_week", String(10), nullable=False),
    UniqueConstraint("sender_id", "started_at", name="uq_analytics_conversation_start"),
)
# Every conversation figure of a range, customers (distinct senders) included,
# is an index-only read of this. Declared apart so that ensure_tables adds it
# to a store made before it (whose ix_analytics_conversations_cover, the same
# without sender_id, is then unused).
conversations_cover_index = Index(
    "ix_analytics_conversations_by_start",
    conversations.c.started_at,
    conversations.c.local_day,
    conversations.c.local_week,
    conversations.c.channel,
    conversations.c.user_turns,
    conversations.c.handed_off,
    conversations.c.two_fallbacks_in_row,
    conversations.c.sender_id,
)
# A campaign's conversions find a customer's conversations by this
# (kefu/notices/store.py); declared apart so that ensure_tables adds it to a
# store made before it.
conversations_customer_index = Index("ix_analytics_conversations_customer", conversations.c.customer_key)

# One row per user message. event_key (a hash of the event's JSON) makes an
# event delivered twice count once.
user_turns = Table(
    "analytics_user_turns",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_key", String(64), nullable=False, unique=True),
    Column("conversation_id", Integer, nullable=False, index=True),
    Column("sender_id", String(255), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("channel", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("normalized_text", String(200), nullable=False),
    Column("intent", String(64), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("is_fallback", Boolean, nullable=False),
    Column("products", String(256), nullable=False, default=""),  # "|"-joined catalogue names
    Column("categories", String(256), nullable=False, default=""),
    # Seconds from this message to the bot's first reply (null: no reply).
    Column("response_seconds", Float, nullable=True),
    # China time of `at`, kept for grouping (no date function per row).
    Column("local_day", String(10), nullable=False),
    Column("local_week", String(10), nullable=False),  # the Monday
    Column("weekday", Integer, nullable=False),  # Monday 0 .. Sunday 6
    Column("local_hour", Integer, nullable=False),
    # Every figure over a month reads this index, not the rows (texts are
    # read only for the not-understood ones: the partial index below).
    Index(
        "ix_analytics_user_turns_cover",
        "at",
        "local_day",
        "local_week",
        "weekday",
        "local_hour",
        "channel",
        "sender_id",
        "intent",
        "is_fallback",
        "response_seconds",
        "products",
        "categories",
    ),
    Index(
        "ix_analytics_user_turns_fallbacks",
        "is_fallback",
        "at",
        "normalized_text",
        sqlite_where=text("is_fallback"),
        postgresql_where=text("is_fallback"),
    ),
    Index("ix_analytics_user_turns_sender_at", "sender_id", "at"),
)
# The reply-time percentiles read this in order (kefu.analytics.figures);
# declared apart so that ensure_tables adds it to a store made before it.
user_turns_reply_index = Index("ix_analytics_user_turns_reply", user_turns.c.response_seconds, user_turns.c.at)
# The message figures of a range of China days read this in its order,
# grouped as they go (no sort of a month of rows); see figures._message_groups.
user_turns_by_day_index = Index(
    "ix_analytics_user_turns_by_day",
    user_turns.c.local_day,
    user_turns.c.channel,
    user_turns.c.intent,
    user_turns.c.weekday,
    user_turns.c.local_hour,
    user_turns.c.is_fallback,
    user_turns.c.products,
    user_turns.c.categories,
    user_turns.c.response_seconds,
)

# One row per hand-off (the action's handoff_reason slot), one per reason
# and conversation: the customer asking again while waiting is the same one.
handoffs = Table(
    "analytics_handoffs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", Integer, nullable=False, index=True),
    Column("sender_id", String(255), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("reason", String(64), nullable=False),
    UniqueConstraint("conversation_id", "reason", name="uq_analytics_handoff"),
    Index("ix_analytics_handoffs_at", "at"),
)


# The unanswered-question loop: what an admin decided for a group of
# not-understood messages (same normalised text).
reviews = Table(
    "analytics_reviews",
    metadata,
    Column("normalized_text", String(200), primary_key=True),
    Column("intent", String(64), nullable=True),  # null with ignored: not training material
    Column("ignored", Boolean, nullable=False, default=False),
    Column("staff_id", Integer, nullable=True),
    Column("updated_at", DateTime, nullable=False),
)


def china_time_columns(moment: datetime) -> dict[str, object]:
    """The kept China-time columns of a UTC moment."""
    local = moment + timedelta(hours=8)
    monday = local.date() - timedelta(days=local.weekday())
    return {
        "local_day": local.date().isoformat(),
        "local_week": monday.isoformat(),
        "weekday": local.weekday(),
        "local_hour": local.hour,
    }


def ensure_tables(engine: Engine) -> None:
    metadata.create_all(engine)
    # Indexes added after a table was first made (create_all makes a table's
    # indexes only with the table).
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Indexing a big existing store takes longer than the engine's
            # statement timeout (made for the shop's look-ups); once only.
            connection.execute(text("SET LOCAL statement_timeout = 0"))
        conversations_cover_index.create(connection, checkfirst=True)
        conversations_customer_index.create(connection, checkfirst=True)
        user_turns_reply_index.create(connection, checkfirst=True)
        user_turns_by_day_index.create(connection, checkfirst=True)
