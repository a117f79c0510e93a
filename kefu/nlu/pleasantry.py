"""Where the request sits in a message that opens with a greeting or closes
with a thank-you.

Chinese shoppers open with 你好/亲/在吗 and close with 谢谢: "你好,我想查一下
订单" asks about an order, "帮我查下物流谢谢" about a parcel. A classifier
that sees the pleasantry weighs it like any other word and answers the
greeting. `content_span` returns the part of the message that carries the
request, or the whole message when nothing but pleasantries and
acknowledgements (好的/嗯嗯/收到) would be left: "你好" stays a greeting and
"好的谢谢" stays a thank-you.

No Rasa import: kefu.nlu.featurizers uses it in the pipeline, tests use it
alone. Works on normalised text (simplified, half-width, lower case).
"""

from __future__ import annotations

import re

# Punctuation and emoji: "你好呀😊" is still only a greeting.
_SEPARATORS = r"[\s,，.。!！?？~～、:：;；…\u2600-\u27bf\U0001f000-\U0001faff]"
_PARTICLES = r"[呀啊啦呢哈嘛吖哦噢喔]"

# Openers safe without a separator after them (你好我想退货).
_OPENERS = (
    "你们好",
    "你好",
    "您好",
    "妳好",
    "大家好",
    "哈喽",
    "哈罗",
    "哈啰",
    "嗨",
    "喂",
    "在吗",
    "在么",
    "在麽",
    "在嘛",
    "在不在",
    "在没",
    "在不",
    "在的吗",
    "在线吗",
    "有人吗",
    "有人在吗",
    "有人在不",
    "有人不",
    "早上好",
    "上午好",
    "中午好",
    "下午好",
    "晚上好",
    "早安",
    "早啊",
    "打扰一下",
    "打扰了",
    "打扰啦",
    "打扰下",
    "亲亲",
    "亲爱的",
)
# Openers that need a separator or another opener after them: 亲子装, 客服电话, hifi.
_GUARDED_OPENERS = ("亲", "客服", "老板", "掌柜的", "店家", "hi", "hello", "hey", "hallo")
# Thank-yous at the end (查下订单谢谢).
_CLOSERS = (
    "万分感谢",
    "十分感谢",
    "特别感谢",
    "多谢多谢",
    "谢谢谢谢",
    "太感谢了",
    "非常感谢",
    "太谢谢了",
    "感谢感谢",
    "谢谢你们",
    "谢谢您",
    "谢谢你",
    "谢谢亲",
    "谢谢啦",
    "谢谢了",
    "谢谢",
    "多谢",
    "感谢",
    "谢啦",
    "谢了",
    "麻烦你了",
    "麻烦您了",
    "麻烦了",
    "辛苦了",
    "辛苦啦",
    "thanks",
    "thank you",
    "thx",
    "3q",
)
# What may be left that is no request: "好的谢谢" is a thank-you, not `affirm`.
_ACKNOWLEDGEMENTS = (
    "好的",
    "好滴",
    "好嘞",
    "好吧",
    "好",
    "嗯嗯",
    "嗯",
    "ok",
    "okay",
    "行",
    "可以",
    "知道了",
    "明白了",
    "懂了",
    "收到",
    "了解",
    "那好",
    "没事了",
    "没问题",
    "哦",
    "噢",
    "那",
    "就这样",
    "那就这样",
    # Statements that close a question rather than ask one: "好的 我知道了
    # 谢谢" and "没有别的问题了 谢谢" are thank-yous, not `affirm` or `deny`.
    "我知道了",
    "我明白了",
    "我了解了",
    "我懂了",
    "清楚了",
    "太好了",
    "那太好了",
    "原来是这样",
    "原来如此",
    "这样啊",
    "没有别的问题了",
    "没有其他问题了",
    "没别的问题了",
    "没其他问题了",
    "没有问题了",
    "我没有别的问题了",
    "我没有其他问题了",
    "我没别的问题了",
    "看到了",
    "收到了",
    "我再等等",
    "那我再等等",
    "我记下了",
    "记下了",
    # More closings seen with a thank-you: "明白 麻烦你了 谢谢", "问题解决了
    # 非常感谢", "好的我去试试 谢谢啦", "行 那我等着 谢谢哈" thank, they ask
    # nothing (a question keeps its 吗 and stays a request).
    "明白",
    "懂",
    "问题解决了",
    "问题已经解决了",
    "已经解决了",
    "解决了",
    "我去试试",
    "我试试",
    "试试看",
    "我等着",
    "那我等着",
    "等你们消息",
    "我等你们消息",
    "找到了",
)


def _alternation(words: tuple[str, ...]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_OPENER = re.compile(
    rf"(?:{_SEPARATORS}|{_PARTICLES})*(?:(?:{_alternation(_OPENERS)})"
    rf"|(?:{_alternation(_GUARDED_OPENERS)})(?={_SEPARATORS}|{_alternation(_OPENERS)}|$))"
    rf"(?:{_PARTICLES}|{_SEPARATORS})*"
)
_CLOSER = re.compile(rf"(?:{_SEPARATORS})*(?:{_alternation(_CLOSERS)})(?:{_PARTICLES}|亲|客服|{_SEPARATORS})*$")
_ONLY_ACKNOWLEDGEMENT = re.compile(rf"^(?:{_alternation(_ACKNOWLEDGEMENTS)}|{_SEPARATORS}|{_PARTICLES}|亲)*$")
# At least two characters of something else must remain to call it a request.
_MIN_CONTENT_CHARS = 2


def content_span(text: str) -> tuple[int, int]:
    """(start, end) of the request inside `text`, without leading greetings
    and trailing thank-yous; (0, len(text)) when no request would remain."""
    start, end = 0, len(text)
    while True:
        match = _OPENER.match(text, start, end)
        if not match or match.end() == start:
            break
        start = match.end()
    while end > start:
        match = _CLOSER.search(text, start, end)
        if not match or match.start() == end:
            break
        end = match.start()
    rest = text[start:end]
    stripped = re.sub(rf"{_SEPARATORS}|{_PARTICLES}", "", rest)
    if (start, end) == (0, len(text)) or len(stripped) < _MIN_CONTENT_CHARS or _ONLY_ACKNOWLEDGEMENT.match(rest):
        return 0, len(text)
    # Keep the span tight: no separators at its edges.
    while start < end and re.match(_SEPARATORS, text[start]):
        start += 1
    while end > start and re.match(_SEPARATORS, text[end - 1]):
        end -= 1
    return start, end


def request_text(text: str) -> str:
    """The request part of `text` (the whole text if it is only pleasantries)."""
    start, end = content_span(text)
    return text[start:end]
