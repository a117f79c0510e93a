"""订阅优惠 / 退订 / TD: the customer's consent to marketing notices; with a
notice_kind entity (不要再发物流通知, 退订通知) to the service notices or both."""

from __future__ import annotations

import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import call, failures_answered, latest_entity, latest_intent, metadata, order_service
from actions.orders import customer_id_of
from kefu.notices.consent import ConsentService

logger = logging.getLogger(__name__)

_consent: ConsentService | None = None


def consent_service() -> ConsentService:
    global _consent
    if _consent is None:
        _consent = ConsentService()
    return _consent


def use_consent_service(service: ConsentService | None) -> None:
    """Tests: over another database; None goes back to the configured one."""
    global _consent
    _consent = service


class ActionMarketingConsent(Action):
    def name(self) -> str:
        return "action_marketing_consent"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        customer_id = customer_id_of(tracker)
        if customer_id is None:
            customer = await call(order_service().customer_from_metadata, metadata(tracker), tracker.sender_id)
            customer_id = customer.id if customer else None
        if customer_id is None:
            logger.info("marketing consent asked in %s without a known customer", tracker.sender_id)
            dispatcher.utter_message(response="utter_marketing_consent_needs_login")
            return []
        granted = latest_intent(tracker) == "subscribe_marketing"
        kind = latest_entity(tracker, "notice_kind")
        if kind not in ("service", "all"):
            kind = None  # marketing, what the intents mean without an entity
        result = await call(consent_service().choose, customer_id, kind, granted, tracker.sender_id)
        if kind == "all":
            # Both kinds: the answer says what is now on or off, changed or not.
            dispatcher.utter_message(response=f"utter_all_notices_{result.removeprefix('already_')}")
        elif kind == "service":
            dispatcher.utter_message(response=f"utter_service_{result}")
        else:
            dispatcher.utter_message(response=f"utter_marketing_{result}")
        return []
