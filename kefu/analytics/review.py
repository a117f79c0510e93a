"""The unanswered-question loop: not-understood messages, grouped by their
normalised text, are assigned to an intent (or ignored) by an admin, and
`kefu nlu export-reviewed` writes the assigned ones as Rasa NLU training
data (data/nlu/reviewed.yml), masked, for the next `make train`."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import and_, select
from sqlalchemy.engine import Engine

from kefu.analytics import store
from kefu.analytics.figures import Period
from kefu.db.engine import utcnow
from kefu.faq import domain_faq_answers
from kefu.shop.formatting import mask_phone
from kefu.shop.privacy import mask_sensitive

ROOT = Path(__file__).resolve().parents[2]
# Where the console's button writes (the command takes --out); tests point it elsewhere.
REVIEWED_NLU = Path(os.environ.get("KEFU_REVIEWED_NLU") or ROOT / "data" / "nlu" / "reviewed.yml")
PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
CONTEXT_TURNS = 2


def known_intents(domain_dir: Path = ROOT / "domain") -> set[str]:
    """The domain's intents, and `faq/<key>` for every FAQ answer: a group
    assigned to one becomes training data of that answer (a retrieval intent)."""
    intents: set[str] = set()
    for path in sorted(domain_dir.glob("*.yml")):
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("intents", []) or []:
            intents.add(next(iter(item)) if isinstance(item, dict) else str(item))
    return intents | {f"faq/{key}" for key in domain_faq_answers(domain_dir)}


def masked(text: str) -> str:
    """Card and ID numbers (already masked upstream, again to be sure) and phone numbers."""
    return PHONE.sub(lambda m: mask_phone(m.group(0)), mask_sensitive(text))


def unanswered(engine: Engine, period: Period, limit: int = 100) -> list[dict[str, Any]]:
    """Groups of not-understood messages, most frequent first, each with the
    admin's decision and the conversation around its latest example."""
    turns, reviews = store.user_turns, store.reviews
    with engine.connect() as db:
        from sqlalchemy import func

        groups = db.execute(
            select(turns.c.normalized_text, func.count().label("times"), func.max(turns.c.id).label("latest_id"))
            .where(and_(turns.c.is_fallback, turns.c.at >= period.start_utc, turns.c.at < period.end_utc))
            .group_by(turns.c.normalized_text)
            .order_by(func.count().desc(), turns.c.normalized_text)
            .limit(limit)
        ).all()
        decided = {
            row.normalized_text: row
            for row in db.execute(
                select(reviews).where(reviews.c.normalized_text.in_([g.normalized_text for g in groups]))
            )
        }
        result = []
        for group in groups:
            latest = db.execute(select(turns).where(turns.c.id == group.latest_id)).mappings().one()
            around = db.execute(
                select(turns.c.text, turns.c.intent, turns.c.id)
                .where(turns.c.conversation_id == latest["conversation_id"])
                .order_by(turns.c.at)
            ).all()
            index = next(i for i, row in enumerate(around) if row.id == latest["id"])
            context = [
                {"text": masked(row.text), "intent": row.intent, "this": row.id == latest["id"]}
                for row in around[max(0, index - CONTEXT_TURNS) : index + CONTEXT_TURNS + 1]
            ]
            review = decided.get(group.normalized_text)
            result.append(
                {
                    "normalized_text": group.normalized_text,
                    "example": masked(latest["text"]),
                    "times": int(group.times),
                    "context": context,
                    "intent": review.intent if review else None,
                    "ignored": bool(review.ignored) if review else False,
                }
            )
    return result


def decide(engine: Engine, normalized_text: str, *, intent: str | None, ignored: bool, staff_id: int | None) -> None:
    """Assign a group to an intent, ignore it, or (neither) undo the decision."""
    if intent is not None and intent not in known_intents():
        raise ValueError(f"unknown intent {intent!r}")
    with engine.begin() as db:
        db.execute(store.reviews.delete().where(store.reviews.c.normalized_text == normalized_text))
        if intent is not None or ignored:
            db.execute(
                store.reviews.insert().values(
                    normalized_text=normalized_text,
                    intent=intent,
                    ignored=ignored and intent is None,
                    staff_id=staff_id,
                    updated_at=utcnow(),
                )
            )


def export_reviewed(engine: Engine, out: Path) -> int:
    """Write every assigned message (distinct texts, masked) as Rasa NLU YAML; how many examples."""
    turns, reviews = store.user_turns, store.reviews
    examples: dict[str, set[str]] = {}
    with engine.connect() as db:
        rows = db.execute(
            select(reviews.c.intent, turns.c.text)
            .join(turns, and_(turns.c.normalized_text == reviews.c.normalized_text, turns.c.is_fallback))
            .where(reviews.c.intent.is_not(None))
        )
        for row in rows:
            text = masked(row.text).strip().replace("\n", " ")
            if text:
                examples.setdefault(row.intent, set()).add(text)
    lines = [
        "# Written by `kefu nlu export-reviewed` from the messages the bot did not understand,",
        f"# as assigned by an admin in the console ({datetime.utcnow():%Y-%m-%d %H:%M} UTC). Masked.",
        'version: "3.1"',
        # An empty list, not null: Rasa's schema refuses `nlu:` with nothing under it.
        "nlu:" if examples else "nlu: []",
    ]
    for intent in sorted(examples):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in sorted(examples[intent])]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sum(len(texts) for texts in examples.values())
