"""FAQ answers (shipping, returns, invoice, payment methods, ...) that admins
edit in the console and the bot gives at once, without retraining.

The domain's `utter_faq/<key>` responses are the contract and the default:
the table `faq_answers` holds only the answers an admin edited, and an
answer put back to its default loses its row. The Rasa server reads the
table through `kefu.faq_nlg.FaqAnswerGenerator` (endpoints.yml `nlg:`),
only when it utters an `utter_faq/*` response. No Rasa import here: the web
server uses this module too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.engine import Engine

from kefu.db.engine import get_engine, session_scope, utcnow
from kefu.db.models import AuditLog, FaqAnswer

ROOT = Path(__file__).resolve().parents[1]
FAQ_PREFIX = "utter_faq/"
LABEL_PREFIX = "utter_intent_label_faq_"
MAX_ANSWER_CHARS = 1000


@dataclass(frozen=True)
class FaqDefault:
    key: str
    label: str  # the Chinese name the fallback's buttons use for it
    text: str  # the domain's (first) text


@functools.lru_cache(maxsize=4)
def domain_faq_answers(domain_dir: Path = ROOT / "domain") -> dict[str, FaqDefault]:
    """Every `utter_faq/<key>` response of the domain, with its label."""
    responses: dict[str, list] = {}
    for path in sorted(domain_dir.glob("*.yml")):
        responses.update((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("responses") or {})
    answers = {}
    for name, variations in responses.items():
        if name.startswith(FAQ_PREFIX) and variations:
            key = name[len(FAQ_PREFIX) :]
            label = (responses.get(LABEL_PREFIX + key) or [{}])[0].get("text") or key
            answers[key] = FaqDefault(key, label, str(variations[0].get("text") or ""))
    return answers


class FaqAnswerStore:
    """The edited answers. Every change writes an audit row (who, which
    answer) in the same transaction."""

    def __init__(self, engine: Engine | None = None):
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    def text_for(self, key: str) -> str | None:
        """The edited text of one answer, or None (use the domain's)."""
        with self.engine.connect() as db:
            return db.execute(select(FaqAnswer.text).where(FaqAnswer.key == key)).scalar()

    def edited(self) -> dict[str, tuple[str, datetime, int | None]]:
        with session_scope(self.engine) as s:
            return {row.key: (row.text, row.updated_at, row.updated_by) for row in s.scalars(select(FaqAnswer))}

    def save(self, key: str, text: str, staff_id: int | None) -> None:
        with session_scope(self.engine) as s:
            row = s.get(FaqAnswer, key)
            if row is None:
                s.add(FaqAnswer(key=key, text=text, updated_at=utcnow(), updated_by=staff_id))
            else:
                row.text, row.updated_at, row.updated_by = text, utcnow(), staff_id
            s.add(_audit("faq_answer_edit", key, staff_id))

    def reset(self, key: str, staff_id: int | None) -> bool:
        """Back to the domain's text; whether there was an edit to undo."""
        with session_scope(self.engine) as s:
            row = s.get(FaqAnswer, key)
            if row is None:
                return False
            s.delete(row)
            s.add(_audit("faq_answer_reset", key, staff_id))
            return True


def _audit(action: str, key: str, staff_id: int | None) -> AuditLog:
    return AuditLog(
        happened_at=utcnow(), conversation_id=None, action=action, order_id=None, outcome=key[:64], staff_id=staff_id
    )
