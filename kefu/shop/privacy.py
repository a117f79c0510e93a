"""Sensitive numbers a customer must never send: bank cards and ID numbers.

The bot never asks for them; when a customer types one anyway, it warns,
and the stored conversation keeps only the masked form produced here.
"""
from __future__ import annotations

import re

_CARD_CANDIDATE = re.compile(r"(?<![\d])(\d(?:[ -]?\d){15,18})(?![\d])")
_ID_CANDIDATE = re.compile(r"(?<![\dA-Za-z])(\d{17}[\dXx])(?![\dA-Za-z])")
# UnionPay 62, Visa 4, Mastercard 51-55 and 2221-2720, JCB 35.
_CARD_PREFIX = re.compile(r"^(?:62|4|5[1-5]|2[2-7]|35)")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def id_number_valid(number: str) -> bool:
    if not re.fullmatch(r"\d{17}[\dXx]", number):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == number[17].upper()


def find_sensitive(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of bank card and ID numbers in `text`."""
    found: list[tuple[int, int, str]] = []
    for match in _ID_CANDIDATE.finditer(text):
        if id_number_valid(match.group(1)):
            found.append((match.start(1), match.end(1), "id_number"))
    for match in _CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"\D", "", match.group(1))
        overlaps = any(match.start(1) < e and s < match.end(1) for s, e, _ in found)
        # 16-digit card numbers look like order numbers; a card issuer's
        # prefix and a valid Luhn checksum tell them apart.
        if not overlaps and 16 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn_valid(digits):
            found.append((match.start(1), match.end(1), "bank_card"))
    return sorted(found)


def mask_sensitive(text: str) -> str:
    """Keep the first 4 and last 4 digits of each sensitive number: 6222********1234."""
    if not text:
        return text
    pieces, last = [], 0
    for start, end, _ in find_sensitive(text):
        number = re.sub(r"[ -]", "", text[start:end])
        pieces.append(text[last:start])
        pieces.append(number[:4] + "*" * (len(number) - 8) + number[-4:])
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def contains_sensitive(text: str) -> bool:
    return bool(text) and bool(find_sensitive(text))
