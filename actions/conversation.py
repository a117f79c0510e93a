"""Hand-off, fallback, closing with a rating, and session start."""

from __future__ import annotations

import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ActiveLoop, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import call, failures_answered, latest_entity, latest_intent, latest_text, records, services
from actions.orders import clear_request, handoff

logger = logging.getLogger(__name__)

# Carried into a new session: what the customer was looking at. Not carried:
# identity (a shared phone or computer may change hands after an hour) and
# half-finished requests.
SESSION_SLOTS_KEPT = ("product", "brand", "category", "lookup_locked", "tail_failures", "rated")


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reason = tracker.get_slot("handoff_reason") or "customer_request"
        events: list[EventType] = []
        if tracker.active_loop.get("name"):
            events += [ActiveLoop(None)] + clear_request()
        return events + await handoff(dispatcher, tracker, reason)


# Intents never offered as a guess: answering "did you mean: yes?" helps nobody,
# and consent to marketing is given or withdrawn only when said plainly.
NOT_SUGGESTED = {
    "nlu_fallback",
    "unclear",
    "affirm",
    "deny",
    "inform",
    "out_of_scope",
    "sensitive_info",
    "rate_service",
    "subscribe_marketing",
    "unsubscribe_marketing",
}
SUGGESTIONS = 2


def suggested_intents(parse_data: dict, domain: DomainDict) -> list[dict]:
    """The most likely intents of a misunderstood message, each with the
    label (domain response `utter_intent_label_<intent>`) and the payload of
    its button. A faq guess is offered as the sub-question the response
    selector picked; its button sends the label as text, which the NLU reads
    as that question (tests/test_nlu_model.py checks it)."""
    responses = domain.get("responses") or {}
    faq_key = (((parse_data.get("response_selector") or {}).get("faq") or {}).get("response") or {}).get(
        "intent_response_key"
    )
    suggestions: list[dict] = []
    for ranked in parse_data.get("intent_ranking") or []:
        intent = ranked.get("name") or ""
        if intent in NOT_SUGGESTED:
            continue
        if intent == "faq":
            if not faq_key:
                continue
            label_key = f"utter_intent_label_{faq_key.replace('/', '_')}"
        else:
            label_key = f"utter_intent_label_{intent}"
        label = ((responses.get(label_key) or [{}])[0]).get("text")
        if not label:
            continue
        payload = label if intent == "faq" else "/" + intent
        suggestions.append({"intent": faq_key if intent == "faq" else intent, "label": label, "payload": payload})
        if len(suggestions) == SUGGESTIONS:
            break
    return suggestions


class ActionFallback(Action):
    """First misunderstanding: offer the two most likely requests as buttons
    (ask to rephrase when there is no guess). Second in a row: a human."""

    def name(self) -> str:
        return "action_fallback"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        user_turns = [e for e in tracker.events if e.get("event") == "user"]
        previous = user_turns[-2] if len(user_turns) >= 2 else None
        previous_intent = ((previous or {}).get("parse_data") or {}).get("intent", {}).get("name")
        if previous_intent == "nlu_fallback" and latest_intent(tracker) == "nlu_fallback":
            logger.info("conversation %s: two misunderstandings in a row, handing off", tracker.sender_id)
            dispatcher.utter_message(response="utter_handoff_offer_after_fallback")
            return await handoff(dispatcher, tracker, "two_fallbacks")
        suggestions = suggested_intents((tracker.latest_message or {}), domain)
        if len(suggestions) == SUGGESTIONS:
            first, second = suggestions
            logger.info(
                "conversation %s: not understood, offering %s / %s",
                tracker.sender_id,
                first["intent"],
                second["intent"],
            )
            dispatcher.utter_message(
                response="utter_fallback_suggest",
                first_label=first["label"],
                first_payload=first["payload"],
                second_label=second["label"],
                second_payload=second["payload"],
            )
            return []
        dispatcher.utter_message(response="utter_ask_rephrase")
        return []


class ActionCloseConversation(Action):
    """Goodbye or thanks: after something was resolved, ask for a rating once."""

    def name(self) -> str:
        return "action_close_conversation"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        intent = latest_intent(tracker)
        if tracker.get_slot("resolved") and not tracker.get_slot("rated"):
            if intent == "thank":
                dispatcher.utter_message(response="utter_you_are_welcome")
            dispatcher.utter_message(response="utter_ask_rating")
            return []
        dispatcher.utter_message(response="utter_goodbye" if intent == "goodbye" else "utter_you_are_welcome")
        return []


class ActionRecordRating(Action):
    def name(self) -> str:
        return "action_record_rating"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        score = latest_entity(tracker, "score")
        try:
            value = int(float(score))
        except (TypeError, ValueError):
            dispatcher.utter_message(response="utter_ask_score")
            return []
        if not 1 <= value <= 5:
            dispatcher.utter_message(response="utter_ask_score")
            return []
        rating_id = await call(records().rate, tracker.sender_id, value, latest_text(tracker)[:200])
        # A rating right after an agent handed the conversation back names that agent.
        console = services().console
        if console is not None:
            await call(console.attribute_rating, rating_id, tracker.sender_id)
        dispatcher.utter_message(response="utter_rating_thanks" if value >= 3 else "utter_rating_sorry", score=value)
        return [SlotSet("rated", True), SlotSet("resolved", False)]


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        for slot in SESSION_SLOTS_KEPT:
            value = tracker.get_slot(slot)
            if value is not None:
                events.append(SlotSet(slot, value))
        events.append(ActionExecuted("action_listen"))
        return events
