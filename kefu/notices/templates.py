"""The text of notices: the utter_notice_* responses of domain/notices.yml,
filled here because notices are sent outside any Rasa turn."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

DOMAIN_FILE = Path(__file__).resolve().parents[2] / "domain" / "notices.yml"


class _Blank(dict):
    def __missing__(self, key: str) -> str:  # a value the event lacks shows as nothing, not "{key}"
        return ""


@cache
def responses() -> dict[str, list[dict[str, Any]]]:
    with DOMAIN_FILE.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)["responses"]


def render(name: str, **values: Any) -> list[dict[str, Any]]:
    """The response `name` (its first variant) as chat messages, with
    {placeholders} filled the way Rasa fills slots ({{ and }} are braces)."""
    variant = copy.deepcopy(responses()[name][0])
    filler = _Blank({k: "" if v is None else v for k, v in values.items()})
    message: dict[str, Any] = {"text": variant["text"].format_map(filler)}
    if variant.get("buttons"):
        message["buttons"] = [
            {"title": b["title"].format_map(filler), "payload": b["payload"].format_map(filler)}
            for b in variant["buttons"]
        ]
    return [message]
