"""What a customer can ask about an order, in one table.

The intent that starts each request, which answers its form collects, and
which after-sales ticket it creates are read from here by the actions, the
service, the database models and (through a consistency test) the domain
and rules, so the lists cannot drift apart.
"""

from __future__ import annotations

from enum import Enum


class TicketKind(str, Enum):
    RETURN = "return"
    EXCHANGE = "exchange"
    REFUND = "refund"
    REPAIR = "repair"
    COMPLAINT = "complaint"


class OrderRequest(str, Enum):
    STATUS = "status"
    TRACK = "track"
    CANCEL = "cancel"
    CHANGE_ADDRESS = "change_address"
    RETURN = "return"
    EXCHANGE = "exchange"
    REFUND = "refund"
    REPAIR = "repair"
    AFTERSALES_STATUS = "aftersales_status"
    PAYMENT = "payment"

    @property
    def intent(self) -> str:
        return _INTENTS[self]

    @property
    def needs_item(self) -> bool:
        """Which item of the order: returns, exchanges and repairs are per item."""
        return self in (OrderRequest.RETURN, OrderRequest.EXCHANGE, OrderRequest.REPAIR)

    @property
    def takes_reason(self) -> bool:
        return self.needs_item or self is OrderRequest.REFUND

    @property
    def ticket_kind(self) -> TicketKind | None:
        try:
            return TicketKind(self.value)
        except ValueError:
            return None

    @property
    def changes_something(self) -> bool:
        """Needs the customer's confirmation before it is carried out."""
        return self.ticket_kind is not None or self in (OrderRequest.CANCEL, OrderRequest.CHANGE_ADDRESS)

    def form_slots(self) -> list[str]:
        """The order form's slots after verification, in the order asked."""
        if self.needs_item:
            return ["item", "reason", "confirm"]
        if self is OrderRequest.CHANGE_ADDRESS:
            return ["new_address", "confirm"]
        if self.changes_something:
            return ["confirm"]
        return []

    @classmethod
    def of_intent(cls, intent: str | None) -> OrderRequest | None:
        return _OF_INTENT.get(intent or "")

    @classmethod
    def parse(cls, value: str | None) -> OrderRequest | None:
        try:
            return cls(value) if value else None
        except ValueError:
            return None


_INTENTS = {
    OrderRequest.STATUS: "order_status",
    OrderRequest.TRACK: "track_shipment",
    OrderRequest.CANCEL: "cancel_order",
    OrderRequest.CHANGE_ADDRESS: "change_address",
    OrderRequest.RETURN: "request_return",
    OrderRequest.EXCHANGE: "request_exchange",
    OrderRequest.REFUND: "request_refund",
    OrderRequest.REPAIR: "request_repair",
    OrderRequest.AFTERSALES_STATUS: "aftersales_status",
    OrderRequest.PAYMENT: "payment_failed",
}
_OF_INTENT = {intent: request for request, intent in _INTENTS.items()}
ORDER_REQUEST_INTENTS = tuple(_INTENTS.values())
