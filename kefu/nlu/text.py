"""Text normalisation and Chinese numerals, with no Rasa import.

`normalise` is length-preserving: character i of the output stands for
character i of the input. Entity offsets in the training data, and the
offsets the extractors report, therefore stay valid for the text the
customer typed.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Longer messages are cut before the heavy components: nobody asks a shop
# question in more than this, and featurising 10,000 characters would stall
# the server for every other customer.
MAX_MESSAGE_CHARS = 512

_WHITESPACE = {"\t", "\n", "\r", "\u3000", "\xa0", "\u2002", "\u2003", "\u2009", "\u200b"}


@lru_cache(maxsize=1)
def _t2s():
    from opencc import OpenCC

    return OpenCC("t2s")


@lru_cache(maxsize=8192)
def _simplified_char(char: str) -> str:
    converted = _t2s().convert(char)
    return converted if len(converted) == 1 else char


def _half_width(char: str) -> str:
    code = ord(char)
    if 0xFF01 <= code <= 0xFF5E:  # full-width ASCII block
        return chr(code - 0xFEE0)
    if char in _WHITESPACE:
        return " "
    return char


def normalise(text: str) -> str:
    """Traditional → simplified, full-width → half-width, ASCII lower case,
    odd whitespace → space; one output character per input character."""
    out = []
    for char in text:
        char = _half_width(char)
        if "A" <= char <= "Z":
            char = char.lower()
        elif ord(char) > 0x2E80:
            char = _simplified_char(char)
        out.append(char)
    result = "".join(out)
    # A phrase-level conversion would be better for a few words (乾 → 干/乾),
    # but it may change the length; only accept it when it does not.
    whole = _t2s().convert(result)
    return whole if len(whole) == len(result) else result


def truncate(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit]


# --- Chinese numerals ---------------------------------------------------------

_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "幺": 1,
    "二": 2,
    "两": 2,
    "俩": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_UNITS = {"十": 10, "百": 100, "千": 1000, "k": 1000, "w": 10000, "万": 10000}

# A number as shoppers write it: 3000, 3,000, 3.5k, 三千, 三千五, 1万5, 两百, 一万二千.
NUMBER_PATTERN = (
    r"(?:\d+(?:[.,]\d+)*\s*[kw千万百十]?(?:[一二两三四五六七八九\d](?![\d一二两三四五六七八九十百千万]))?"
    r"|[零〇一二两俩三四五六七八九十百千万]+)"
)


def parse_number(text: str) -> float | None:
    """'三千五' → 3500, '1万5' → 15000, '2k' → 2000, '两百' → 200, '3,999' → 3999."""
    text = text.strip().lower().replace(",", "").replace(" ", "")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    total, section, current = 0.0, 0.0, None
    last_unit = None
    i = 0
    while i < len(text):
        char = text[i]
        if char.isdigit() or char == ".":
            j = i
            while j < len(text) and (text[j].isdigit() or text[j] == "."):
                j += 1
            try:
                current = float(text[i:j])
            except ValueError:
                return None
            i = j
            continue
        if char in _DIGITS:
            current = (current or 0) * 10 + _DIGITS[char] if current and current >= 10 else _DIGITS[char]
        elif char in _UNITS:
            unit = _UNITS[char]
            if unit == 10000:
                total = (total + section + (current or 0)) * 10000 if (section or current) else (total or 1) * 10000
                section, current = 0.0, None
            else:
                section += (current if current is not None else 1) * unit
                current = None
            last_unit = unit
        else:
            return None
        i += 1
    if current is not None:
        # 三千五 / 1万5 / 两百五: a trailing digit is one unit below the last.
        if last_unit and current < 10:
            below = {10000: 1000, 1000: 100, 100: 10, 10: 1}.get(last_unit, 1)
            section += current * below
        else:
            section += current
    value = total + section
    return value if value > 0 or text in ("0", "零", "〇") else None


def as_int(value: float | None) -> int | None:
    return None if value is None else int(round(value))


_SPACES = re.compile(r"\s+")


def squash_spaces(text: str) -> str:
    return _SPACES.sub("", text)
