"""Record conversation test stories from scripted chats with the real bot.

Like `rasa interactive`, but scripted: every conversation in
scripts/story_conversations.yml is held over the REST channel against the
running servers (a freshly seeded demo shop, the current model), and its
tracker is written as a Rasa test story with the user's text, the intent
and entities the NLU found, every action and every slot the bot set.

Review the stories before committing them: they record what the bot did,
and become the expectation `rasa test` holds the bot to from then on.

Usage: python scripts/record_stories.py [--model models/x.tar.gz]
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path

import yaml

from kefu.db.engine import make_engine
from kefu.shop.demo import reset_database, seed, showcase
from kefu.shop.tokens import sign_customer_token
from kefu.testing import newest_model, running_servers

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "scripts" / "story_conversations.yml"
OUT = ROOT / "tests" / "stories"
SECRET = "story-secret"
SKIP_EVENTS = {"action_listen", "action_session_start"}


def annotate(text: str, entities: list[dict]) -> str:
    """The user text with Rasa's inline entity markup."""
    pieces, last = [], 0
    for entity in sorted(entities, key=lambda e: e.get("start", 0)):
        start, end = entity.get("start"), entity.get("end")
        if start is None or end is None or start < last:
            continue
        surface = text[start:end]
        value = entity.get("value")
        pieces.append(text[last:start])
        if str(value) == surface:
            pieces.append(f"[{surface}]({entity['entity']})")
        else:
            pieces.append(f'[{surface}]{{"entity": "{entity["entity"]}", "value": "{value}"}}')
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def story_steps(events: list[dict], sent: list[str]) -> list[dict]:
    """`sent` are the texts as typed: the stored ones have card numbers masked."""
    steps: list[dict] = []
    typed = iter(sent)
    for event in events:
        kind = event.get("event")
        if kind == "user":
            parse = event.get("parse_data") or {}
            intent = (parse.get("intent") or {}).get("name")
            key = (parse.get("response_selector") or {}).get("faq", {}).get("response", {}).get("intent_response_key")
            text = next(typed, event.get("text") or "")
            if text.startswith("/"):
                step = {"intent": intent}
                entities = [{e["entity"]: e["value"]} for e in parse.get("entities", [])]
                if entities:
                    step["entities"] = entities
            else:
                step = {
                    "user": annotate(text, parse.get("entities", [])),
                    "intent": key if intent == "faq" and key else intent,
                }
            steps.append(step)
        elif kind == "action" and event.get("name") not in SKIP_EVENTS:
            steps.append({"action": event["name"]})
        elif kind == "active_loop":
            steps.append({"active_loop": event.get("name")})
        elif kind == "slot":
            name, value = event.get("name"), event.get("value")
            steps.append({"slot_was_set": [{name: value}]})
    return steps


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    model = args.model or newest_model()
    if model is None:
        raise SystemExit("no model: train first (make train)")
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    cases = showcase()
    database = Path(tempfile.mkdtemp()) / "shop.sqlite3"
    engine = make_engine(f"sqlite:///{database}")
    seed(engine, orders=300)
    OUT.mkdir(parents=True, exist_ok=True)
    with running_servers(model, f"sqlite:///{database}", extra_env={"KEFU_TOKEN_SECRET": SECRET}) as bot:
        for file_name, conversations in spec.items():
            stories = []
            for conversation in conversations:
                # Each conversation meets the demo shop as seeded, not as the
                # previous one left it.
                reset_database(engine)
                seed(engine, orders=300)
                sender = f"story-{uuid.uuid4().hex[:10]}"
                metadata = None
                if conversation.get("logged_in"):
                    metadata = {"customer_token": sign_customer_token(1, secret=SECRET, ttl_seconds=10**8)}
                sent = [
                    str(turn).format(
                        **{k: v["order_no"] for k, v in cases.items()},
                        **{f"{k}_tail": v["phone_tail"] for k, v in cases.items()},
                    )
                    for turn in conversation["turns"]
                ]
                for text in sent:
                    bot.say(sender, text, metadata)
                tracker = bot.get_json(f"/conversations/{sender}/tracker")
                stories.append({"story": conversation["story"], "steps": story_steps(tracker["events"], sent)})
            path = OUT / f"test_{file_name}.yml"
            body = yaml.safe_dump({"stories": stories}, allow_unicode=True, sort_keys=False, width=1000)
            path.write_text(
                f"# Recorded by scripts/record_stories.py from scripts/story_conversations.yml; reviewed.\n"
                f'version: "3.1"\n{body}',
                encoding="utf-8",
            )
            print(f"wrote {len(stories)} stories to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
