"""A customer's yes or no to notices, asked for in the chat: 订阅优惠 /
退订 / TD for marketing, 不要再发物流通知 / 打开物流通知 for the service
notices, 退订通知 / 打开所有通知 for both. No Rasa here: actions/notices.py
calls it."""

from __future__ import annotations

from kefu.notices.store import NoticeStore

# The notice_kind entity's values and the consent kinds they switch; no
# entity means marketing (the intents' original meaning).
KINDS_OF = {None: ("marketing",), "marketing": ("marketing",), "service": ("service",), "all": ("service", "marketing")}


class ConsentService:
    def __init__(self, store: NoticeStore | None = None) -> None:
        self.store = store or NoticeStore()

    def marketing(self, customer_id: int, granted: bool, conversation_id: str) -> str:
        """'subscribed', 'unsubscribed', or 'already_…' when nothing changed;
        the channel is the conversation's (WeChat or the web page)."""
        return self.choose(customer_id, "marketing", granted, conversation_id)

    def choose(self, customer_id: int, notice_kind: str | None, granted: bool, conversation_id: str) -> str:
        """Switch the kinds `notice_kind` names (see KINDS_OF; unknown values
        raise ValueError). 'subscribed' / 'unsubscribed' when any changed,
        'already_…' when none did. Each change is stored with its time and
        channel (NoticeStore.set_consent)."""
        if notice_kind not in KINDS_OF:
            raise ValueError(f"notice kind {notice_kind!r}")
        channel = "wechat" if conversation_id.startswith("wechat-") else "web"
        changed = False
        for kind in KINDS_OF[notice_kind]:
            changed = self.store.set_consent(customer_id, kind, granted, channel, conversation_id) or changed
        state = "subscribed" if granted else "unsubscribed"
        return state if changed else f"already_{state}"
