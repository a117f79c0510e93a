"""The Rasa server's response generator: Rasa's own (the domain's responses,
slots filled, channel and condition variations) with one difference, an
`utter_faq/<key>` response takes the text an admin edited in the console
(kefu/faq.py), read from the shop database when it is uttered.

endpoints.yml names it (`nlg: type: kefu.faq_nlg.FaqAnswerGenerator`).
Why not Rasa's HTTP NLG endpoint: it would make every response of every
turn an HTTP call carrying the whole tracker; here the other responses cost
one string comparison and an FAQ answer one primary-key read
(`python -m bench.faq_answer_cost`). Why not a custom action for the faq
rule: the rules, the stories and the model would change for the same
result.

The database down, slow or without the table: the domain's text, and an
operator log line. An admin's text is given as written (no slot filling).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from kefu.faq import FAQ_PREFIX, FaqAnswerStore

logger = logging.getLogger(__name__)
# A turn waits at most this long for the edited text before it gives the domain's.
READ_TIMEOUT_SECONDS = 1.0


class FaqAnswerGenerator(TemplatedNaturalLanguageGenerator):
    def __init__(
        self,
        endpoint_config: EndpointConfig | None = None,
        domain: Domain | None = None,
        store: FaqAnswerStore | None = None,
    ) -> None:
        super().__init__((domain or Domain.empty()).responses)
        self.store = store or FaqAnswerStore()

    async def generate(
        self, utter_action: str, tracker: DialogueStateTracker, output_channel: str, **kwargs: Any
    ) -> dict[str, Any] | None:
        message = await super().generate(utter_action, tracker, output_channel, **kwargs)
        if message is None or not utter_action.startswith(FAQ_PREFIX):
            return message
        key = utter_action[len(FAQ_PREFIX) :]
        try:
            edited = await asyncio.wait_for(asyncio.to_thread(self.store.text_for, key), READ_TIMEOUT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - any failure: the domain's answer, never none
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'timed out'}"
            logger.error("FAQ answer %s: edited text not read, the domain's is given (%s)", key, reason)
            return message
        return {**message, "text": edited} if edited else message
