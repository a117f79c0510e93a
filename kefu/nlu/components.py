"""Kefu's Rasa NLU components for Chinese shop conversations.

- ChineseTextNormalizer: first in the pipeline; length-preserving
  normalisation (traditional → simplified, full-width → half-width, ASCII
  lower case) and truncation of absurdly long messages.
- ShopRuleEntityExtractor: order_no, phone_tail, tracking_no, price_max and
  score by rules (kefu.nlu.rules), values normalised (numbers for budgets).
- CatalogueEntityExtractor: product, brand and category from the catalogue
  (kefu.nlu.catalogue), built at training time from the lookup tables and
  synonyms of data/catalogue.yml and persisted in the model.
- RetrievalIntentResponseSelector: Rasa's ResponseSelector, run only on
  messages whose intent is its retrieval intent.
- BareNumberClassifier: a message that is only a number answers a question.
- SensitiveDataGuard: bank card and ID numbers are flagged and masked.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_CONFIDENCE,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from kefu import rasa_speedups
from kefu.nlu import rules
from kefu.nlu.catalogue import CatalogueMatcher, term_key
from kefu.nlu.graph import StatelessComponent
from kefu.nlu.text import MAX_MESSAGE_CHARS, normalise
from kefu.shop.privacy import contains_sensitive, mask_sensitive

# The one place kefu.rasa_speedups are installed: Rasa imports this module in
# every process that trains, tests or serves our model (config.yml names its
# components), before it builds or loads any part of the model. Guarded:
# stock Rasa on another Rasa version or with KEFU_RASA_SPEEDUPS=0.
rasa_speedups.install()

logger = logging.getLogger(__name__)

RAW_TEXT = "kefu_raw_text"
# Set by the normaliser on a message whose bank card or ID number it masked.
SENSITIVE = "kefu_sensitive"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class ChineseTextNormalizer(GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"max_chars": MAX_MESSAGE_CHARS}

    def __init__(self, config: dict[str, Any]) -> None:
        self.max_chars = int(config.get("max_chars", MAX_MESSAGE_CHARS))

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ChineseTextNormalizer:
        return cls(config)

    def _normalise(self, message: Message, mask: bool = False) -> None:
        text = message.get(TEXT)
        if not text or not isinstance(text, str):
            return
        original = text
        if mask and contains_sensitive(text):
            # Masked on the whole text before the cut, so a number past the
            # cut, or cut in two by it, reaches no component, slot or log.
            message.set(SENSITIVE, True)
            text = original = mask_sensitive(text)
        if len(text) > self.max_chars:
            logger.warning("message of %d characters cut to %d before NLU", len(text), self.max_chars)
            text = text[: self.max_chars]
        normalised = normalise(text)
        if normalised != message.get(TEXT):
            message.set(RAW_TEXT, original)
            message.set(TEXT, normalised)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for message in training_data.training_examples:
            self._normalise(message)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            self._normalise(message, mask=True)
        return messages


def _entity(entity: str, start: int, end: int, value: Any, confidence: float, extractor: str) -> dict[str, Any]:
    return {
        ENTITY_ATTRIBUTE_TYPE: entity,
        ENTITY_ATTRIBUTE_START: start,
        ENTITY_ATTRIBUTE_END: end,
        ENTITY_ATTRIBUTE_VALUE: value,
        ENTITY_ATTRIBUTE_CONFIDENCE: confidence,
        EXTRACTOR: extractor,
    }


def _add_entities(message: Message, new: list[dict[str, Any]]) -> None:
    if not new:
        return
    existing = message.get(ENTITIES, [])
    # A rule or catalogue match is authoritative over DIET on the same span.
    kept = [
        e for e in existing if not any(e.get("start", -1) < n["end"] and n["start"] < e.get("end", -1) for n in new)
    ]
    message.set(ENTITIES, sorted(kept + new, key=lambda e: e.get("start", 0)), add_to_output=True)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class ShopRuleEntityExtractor(StatelessComponent, EntityExtractorMixin):
    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            _add_entities(
                message,
                [_entity(e.entity, e.start, e.end, e.value, 1.0, self.__class__.__name__) for e in rules.extract(text)],
            )
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True)
class CatalogueEntityExtractor(GraphComponent, EntityExtractorMixin):
    """Entity ruler over the catalogue. Needs the lookup tables `product`,
    `brand`, `category` and their synonyms in the training data."""

    ENTITIES = ("product", "brand", "category")

    def __init__(
        self, model_storage: ModelStorage, resource: Resource, terms: dict[str, dict[str, str]] | None = None
    ) -> None:
        self._model_storage = model_storage
        self._resource = resource
        self.terms = terms or {}
        self.matcher = CatalogueMatcher(self.terms) if self.terms else None

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> CatalogueEntityExtractor:
        return cls(model_storage, resource)

    @staticmethod
    def terms_from_training_data(training_data: TrainingData) -> dict[str, dict[str, str]]:
        terms: dict[str, dict[str, str]] = {entity: {} for entity in CatalogueEntityExtractor.ENTITIES}
        canonical: dict[str, tuple] = {}
        for table in training_data.lookup_tables:
            entity = table.get("name")
            if entity not in terms:
                continue
            elements = table.get("elements") or []
            if isinstance(elements, str):  # a file path in old formats
                continue
            for name in elements:
                terms[entity][name] = name
                canonical[term_key(name)] = (entity, name)
        # Rasa keys synonyms by the lower-cased surface form.
        for surface, value in training_data.entity_synonyms.items():
            target = canonical.get(term_key(value))
            if target:
                entity, name = target
                terms[entity].setdefault(surface, name)
        return terms

    def train(self, training_data: TrainingData) -> Resource:
        self.terms = self.terms_from_training_data(training_data)
        if not any(self.terms.values()):
            logger.warning("no catalogue lookup tables in the training data: run `kefu nlu export`")
        self.matcher = CatalogueMatcher(self.terms)
        with self._model_storage.write_to(self._resource) as directory:
            (directory / "catalogue.json").write_text(
                json.dumps(self.terms, ensure_ascii=False, sort_keys=True), encoding="utf-8"
            )
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> CatalogueEntityExtractor:
        try:
            with model_storage.read_from(resource) as directory:
                terms = json.loads((directory / "catalogue.json").read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            logger.warning("the model has no catalogue; product/brand/category will not be recognised")
            terms = {}
        return cls(model_storage, resource, terms)

    def process(self, messages: list[Message]) -> list[Message]:
        if self.matcher is None:
            return messages
        for message in messages:
            text = message.get(TEXT) or ""
            _add_entities(
                message,
                [
                    _entity(m.entity, m.start, m.end, m.value, m.confidence, self.__class__.__name__)
                    for m in self.matcher.find(text)
                ],
            )
        return messages


def _decide_intent(message: Message, name: str, confidence: float = 1.0) -> None:
    """Set the intent at the head of the ranking: by rule, certain, unless a
    confidence is given."""
    intent = {"name": name, "confidence": confidence}
    ranking = [intent] + [r for r in message.get("intent_ranking", []) if r.get("name") != name]
    message.set("intent", intent, add_to_output=True)
    message.set("intent_ranking", ranking, add_to_output=True)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class RetrievalIntentResponseSelector(ResponseSelector):
    """Rasa's ResponseSelector, trained the same way, that selects a response
    only for messages whose first or second intent is its retrieval intent
    (`faq`; the second for the fallback's two guesses). Its answer
    is used only when the bot runs `utter_faq`, which only the faq intent
    triggers; the stock component ran its TensorFlow model on every message
    (a tenth of the Rasa server's time per turn, BENCHMARKS.md). Other
    messages carry no `response_selector` result. Without a configured
    `retrieval_intent` it behaves exactly like the stock component."""

    def process(self, messages: list[Message]) -> list[Message]:
        if not self.retrieval_intent:
            return super().process(messages)
        # Also when faq is the runner-up: the fallback offers the top two as buttons.
        retrieval = [
            m
            for m in messages
            if self.retrieval_intent
            in [r.get("name") for r in (m.get("intent_ranking") or [m.get("intent") or {}])[:2]]
        ]
        if retrieval:
            super().process(retrieval)
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class UnclearAsFallback(StatelessComponent):
    """Right after the FallbackClassifier: a message classified as `unclear`
    (那个 / 然后呢 / 截图发你了: trained on such messages, data/nlu/unclear.yml)
    is a fallback. The confidence threshold alone had to stay high to catch
    them, which sent real requests in unfamiliar words to the fallback too.
    The intent becomes `nlu_fallback` with the classifier's confidence, ahead
    of the ranking, so the rules, the fallback's guesses, analytics and
    `rasa test nlu` (which reads the next entry) treat it as the
    FallbackClassifier's own."""

    INTENT = "unclear"

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            intent = message.get("intent") or {}
            if intent.get("name") != self.INTENT:
                continue
            _decide_intent(message, "nlu_fallback", intent.get("confidence", 0.0))
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class BareNumberClassifier(StatelessComponent):
    """A message that is nothing but a number of four digits or more answers
    a question the bot asked (an order number, a phone tail, even a mistyped
    one): its intent is `inform`, whatever DIET guessed. Without this a
    malformed order number such as 12345 could be read as a goodbye and end
    the order form instead of being answered. Short numbers are left alone:
    88 and 886 are chat slang for bye, 5 may be a rating."""

    INTENT = "inform"
    BARE_NUMBER = re.compile(r"^\s*\d(?:[\s-]?\d){3,}\s*$")
    # A run along one keyboard row (asdfghjkl, qwertyuiop) is not a message:
    # the sentence features put it near short answers such as "ok" (affirm).
    KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    # Punctuation alone ("？？？", "。。。") asks nothing we can answer.
    ONLY_PUNCTUATION = re.compile(r"[\s?!.,;:~…·。，！？、；：～\-_]+")

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = (message.get(TEXT) or "").strip()
            if (len(text) >= 5 and any(text in row for row in self.KEYBOARD_ROWS)) or self.ONLY_PUNCTUATION.fullmatch(
                text
            ):
                # Noise carries no entities either (DIET may tag it as a reason).
                _decide_intent(message, "nlu_fallback")
                message.set(ENTITIES, [], add_to_output=True)
                continue
            if not self.BARE_NUMBER.match(text):
                continue
            current = (message.get("intent") or {}).get("name")
            if current == self.INTENT:
                continue
            _decide_intent(message, self.INTENT)
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class SensitiveDataGuard(StatelessComponent):
    """Last in the pipeline: a message carrying a bank card or ID number gets
    the intent `sensitive_info`, whatever else it says, so the bot warns the
    customer; the number is masked in the parse result. (The tracker store
    masks the stored text: kefu.tracker_store.)"""

    INTENT = "sensitive_info"

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            if not (message.get(SENSITIVE) or contains_sensitive(text)):
                continue
            logger.warning("a customer typed a bank card or ID number; it is masked and the customer warned")
            message.set(TEXT, mask_sensitive(text))
            if message.get(RAW_TEXT):
                message.set(RAW_TEXT, mask_sensitive(message.get(RAW_TEXT)))
            _decide_intent(message, self.INTENT)
            # Entities found inside the number (an "order number", a "phone tail") are not real.
            message.set(
                ENTITIES,
                [
                    e
                    for e in message.get(ENTITIES, [])
                    if e.get("entity") not in ("order_no", "phone_tail", "tracking_no")
                ],
                add_to_output=True,
            )
        return messages
