"""A customer's yes or no to marketing notices, asked for in the chat
(订阅优惠 / 退订 / TD). No Rasa here: actions/notices.py calls it."""

from __future__ import annotations

from kefu.notices.store import NoticeStore


class ConsentService:
    def __init__(self, store: NoticeStore | None = None) -> None:
        self.store = store or NoticeStore()

    def marketing(self, customer_id: int, granted: bool, conversation_id: str) -> str:
        """'subscribed', 'unsubscribed', or 'already_…' when nothing changed;
        the channel is the conversation's (WeChat or the web page)."""
        channel = "wechat" if conversation_id.startswith("wechat-") else "web"
        changed = self.store.set_consent(customer_id, "marketing", granted, channel, conversation_id)
        state = "subscribed" if granted else "unsubscribed"
        return state if changed else f"already_{state}"
