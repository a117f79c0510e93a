"""Sensitive numbers a customer must never send: bank cards and ID numbers.

The bot never asks for them; when a customer types one anyway, it warns,
and the stored conversation keeps only the masked form produced here.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

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


# What customers put between digit groups: spaces of every width (ideographic,
# non-breaking, zero-width), dashes, dots and commas, half- or full-width.
_SEPARATORS = frozenset(
    " \t\n\r\u3000\xa0\u2002\u2003\u2009\u200a\u202f\u205f\u200b\u200c\u200d\u2060\ufeff"
    "-\u2010\u2011\u2012\u2013\u2014\u2015\uff0d_.\uff0e\u00b7\u30fb,\uff0c"
)
_MAX_SEPARATOR_RUN = 3
_ID_CHECK_LETTERS = frozenset("xX\uff58\uff38")
_ANY_DIGIT = re.compile(r"\d")  # any Unicode decimal digit, full-width included
_MIN_DIGITS = 16


def _digit(char: str) -> str | None:
    if "0" <= char <= "9":
        return char
    value = unicodedata.decimal(char, None)
    return None if value is None else str(value)


def _digit_groups(text: str) -> list[list[tuple[int, int, str]]]:
    """Runs of digits (start, end, ASCII digits), chained when only a few
    separators stand between them. An ID number's check letter ends a group."""
    chains: list[list[tuple[int, int, str]]] = []
    current: list[tuple[int, int, str]] = []
    index, length = 0, len(text)
    while index < length:
        if _digit(text[index]) is None:
            index += 1
            continue
        start, digits = index, []
        while index < length and (digit := _digit(text[index])) is not None:
            digits.append(digit)
            index += 1
        if (
            index < length
            and text[index] in _ID_CHECK_LETTERS
            and (index + 1 == length or not (text[index + 1].isascii() and text[index + 1].isalnum()))
        ):
            digits.append("X")
            index += 1
        group = (start, index, "".join(digits))
        gap = text[current[-1][1] : start] if current else ""
        if (
            current
            and not current[-1][2].endswith("X")
            and len(gap) <= _MAX_SEPARATOR_RUN
            and all(char in _SEPARATORS for char in gap)
        ):
            current.append(group)
        else:
            if current:
                chains.append(current)
            current = [group]
    if current:
        chains.append(current)
    return chains


def _kind(number: str) -> str | None:
    if len(number) == 18 and id_number_valid(number):
        return "id_number"
    # 16-digit card numbers look like order numbers; a card issuer's
    # prefix and a valid Luhn checksum tell them apart.
    if 16 <= len(number) <= 19 and number.isdigit() and _CARD_PREFIX.match(number) and luhn_valid(number):
        return "bank_card"
    return None


def find_sensitive_numbers(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, digits) of bank card and ID numbers in `text`, found
    on its normalised digits: full-width digits, digit groups split by any
    kind of space, dashes or dots, and the 6-8-4 ID layout included."""
    if not text or len(_ANY_DIGIT.findall(text)) < _MIN_DIGITS:
        return []
    found = []
    for chain in _digit_groups(text):
        first = 0
        while first < len(chain):
            # The longest run of whole groups from `first` that is a card or ID.
            for last in range(len(chain) - 1, first - 1, -1):
                number = "".join(group[2] for group in chain[first : last + 1])
                kind = _kind(number) if len(number) <= 19 else None
                if kind:
                    found.append((chain[first][0], chain[last][1], kind, number))
                    first = last + 1
                    break
            else:
                first += 1
    return found


def find_sensitive(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of bank card and ID numbers in `text`."""
    return [(start, end, kind) for start, end, kind, _ in find_sensitive_numbers(text)]


def mask_sensitive(text: str) -> str:
    """Keep the first 4 and last 4 digits of each sensitive number: 6222********1234."""
    if not text:
        return text
    pieces, last = [], 0
    for start, end, _, number in find_sensitive_numbers(text):
        pieces.append(text[last:start])
        pieces.append(number[:4] + "*" * (len(number) - 8) + number[-4:])
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def contains_sensitive(text: str) -> bool:
    return bool(text) and bool(find_sensitive_numbers(text))


def mask_in_place(value: Any) -> Any:
    """`value` with every string in it masked; dicts and lists are changed in
    place (so every holder of them sees the masked form) and returned."""
    if isinstance(value, str):
        return mask_sensitive(value) if contains_sensitive(value) else value
    if isinstance(value, dict):
        for key, item in value.items():
            masked = mask_in_place(item)
            if masked is not item:
                value[key] = masked
    elif isinstance(value, list):
        for index, item in enumerate(value):
            masked = mask_in_place(item)
            if masked is not item:
                value[index] = masked
    return value
