"""Find catalogue names (products, brands, categories) in shopper text.

Three passes over normalised text, each only where the previous found
nothing, longest match first:

1. a spaCy `zh` pipeline with the jieba segmenter and an EntityRuler whose
   phrase patterns are the catalogue's names and aliases (token-aligned);
2. the same terms matched on characters, for names jieba split differently;
3. homophone typos: the pinyin of a window equals the pinyin of a term
   (小迷14 → 小米14), for terms of three or more characters.

Every match carries the catalogue's own name as its value. No Rasa import.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache

from kefu.nlu.text import normalise, squash_spaces

logger = logging.getLogger(__name__)

ENTITY_PRIORITY = {"product": 0, "brand": 1, "category": 2}
# 手机号 / 手机尾号 / 手机后四位 speak of a phone number, not the category 手机.
NOT_A_CATEGORY_BEFORE = ("号", "尾号", "后四位", "后4位", "末四位")
MIN_FUZZY_CHARS = 3


@dataclass(frozen=True)
class CatalogueMatch:
    entity: str
    start: int
    end: int
    value: str
    confidence: float
    how: str  # ruler | chars | pinyin


def term_key(term: str) -> str:
    return normalise(term.strip())


def term_variants(term: str) -> set[str]:
    key = term_key(term)
    return {key, squash_spaces(key)} - {""}


@lru_cache(maxsize=4096)
def _pinyin(char: str) -> str:
    from pypinyin import Style, lazy_pinyin

    if "\u4e00" <= char <= "\u9fff":
        return lazy_pinyin(char, style=Style.NORMAL)[0]
    return char


# Brands whose products are not named after them in the catalogue.
_BRAND_PRODUCT_WORDS = {"apple": ("iphone", "ipad", "airpods", "macbook", "apple")}


def _brand_of(brand: str, product: str) -> bool:
    brand_key, product_key = term_key(brand), term_key(product)
    words = _BRAND_PRODUCT_WORDS.get(brand_key, (brand_key,))
    return any(word in product_key for word in words)


def _has_han(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


class CatalogueMatcher:
    """Built from {entity: {surface form: catalogue name}}."""

    def __init__(self, terms: dict[str, dict[str, str]], use_spacy: bool = True):
        self.terms: dict[str, tuple[str, str]] = {}  # normalised surface → (entity, value)
        for entity in sorted(terms, key=lambda e: ENTITY_PRIORITY.get(e, 9), reverse=True):
            for surface, value in terms[entity].items():
                for variant in term_variants(surface):
                    # Product names outrank a brand or category with the same surface.
                    self.terms[variant] = (entity, value)
        ordered = sorted(self.terms, key=len, reverse=True)
        self._char_pattern = re.compile("|".join(re.escape(t) for t in ordered)) if ordered else None
        self._pinyin_index: dict[tuple[str, ...], str] = {}
        for term in ordered:
            if len(term) >= MIN_FUZZY_CHARS and _has_han(term):
                self._pinyin_index.setdefault(tuple(_pinyin(c) for c in term), term)
        self._pinyin_lengths = sorted({len(k) for k in self._pinyin_index}, reverse=True)
        self._nlp = self._build_spacy() if use_spacy and self.terms else None

    def _build_spacy(self):
        import jieba
        import spacy

        # The segmenter is jieba's global one, which Rasa's JiebaTokenizer has
        # already given the catalogue dictionary; adding the terms here keeps
        # them whole even where that dictionary is absent (unit tests).
        for term in self.terms:
            if " " not in term:
                jieba.add_word(term, freq=2000)
        nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
        ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER", "overwrite_ents": True})
        ruler.add_patterns(  # type: ignore[attr-defined]  # add_pipe is typed as returning any Pipe
            [{"label": entity, "pattern": term, "id": value} for term, (entity, value) in self.terms.items()]
        )
        return nlp

    def find(self, text: str) -> list[CatalogueMatch]:
        """Matches in `text` (already normalised), without overlaps."""
        found: list[CatalogueMatch] = []

        def free(start: int, end: int) -> bool:
            return all(end <= m.start or start >= m.end for m in found)

        if self._nlp is not None:
            doc = self._nlp(text)
            for ent in doc.ents:
                if free(ent.start_char, ent.end_char) and self._ascii_bounded(text, ent.start_char, ent.end_char):
                    found.append(CatalogueMatch(ent.label_, ent.start_char, ent.end_char, ent.ent_id_, 1.0, "ruler"))
        if self._char_pattern is not None:
            for m in self._char_pattern.finditer(text):
                if free(m.start(), m.end()) and self._ascii_bounded(text, m.start(), m.end()):
                    entity, value = self.terms[m.group(0)]
                    found.append(CatalogueMatch(entity, m.start(), m.end(), value, 0.95, "chars"))
        if self._pinyin_index:
            found.extend(self._pinyin_matches(text, free))
        kept = sorted((m for m in found if not self._phone_number_context(text, m)), key=lambda m: m.start)
        return self._merge_brand_into_product(text, kept)

    @staticmethod
    def _merge_brand_into_product(text: str, matches: list[CatalogueMatch]) -> list[CatalogueMatch]:
        """索尼 xm5 / 苹果 airpods: a brand right before one of its own products
        is part of the product's name, so the span is the product's."""
        merged: list[CatalogueMatch] = []
        for match in matches:
            previous = merged[-1] if merged else None
            if (
                previous is not None
                and previous.entity == "brand"
                and match.entity == "product"
                and not text[previous.end : match.start].strip()
                and match.start - previous.end <= 1
                and _brand_of(previous.value, match.value)
            ):
                merged[-1] = CatalogueMatch(
                    "product",
                    previous.start,
                    match.end,
                    match.value,
                    min(previous.confidence, match.confidence),
                    match.how,
                )
                continue
            merged.append(match)
        return merged

    @staticmethod
    def _phone_number_context(text: str, match: CatalogueMatch) -> bool:
        return match.entity == "category" and text.startswith(NOT_A_CATEGORY_BEFORE, match.end)

    @staticmethod
    def _ascii_bounded(text: str, start: int, end: int) -> bool:
        # "x100" must not match inside "x1000", nor "gt5" inside "gt50".
        def alnum(i: int) -> bool:
            return 0 <= i < len(text) and text[i].isascii() and text[i].isalnum()

        left_ok = not (alnum(start - 1) and text[start].isascii() and text[start].isalnum())
        right_ok = not (alnum(end) and text[end - 1].isascii() and text[end - 1].isalnum())
        return left_ok and right_ok

    def _pinyin_matches(self, text: str, free) -> list[CatalogueMatch]:
        matches = []
        syllables = [_pinyin(c) for c in text]
        i = 0
        while i < len(text):
            hit = None
            for length in self._pinyin_lengths:
                if i + length > len(text) or not free(i, i + length):
                    continue
                term = self._pinyin_index.get(tuple(syllables[i : i + length]))
                if term and sum(a != b for a, b in zip(term, text[i : i + length])) <= 2:
                    hit = (length, term)
                    break
            if hit:
                length, term = hit
                if self._ascii_bounded(text, i, i + length):
                    entity, value = self.terms[term]
                    matches.append(CatalogueMatch(entity, i, i + length, value, 0.8, "pinyin"))
                    i += length
                    continue
            i += 1
        return matches
