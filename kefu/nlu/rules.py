"""Rule-based entities: order numbers, phone tails, tracking numbers, sizes,
budgets, satisfaction scores and the kind of notice a (un)subscription
names. No Rasa import; the Rasa component wraps `extract`.

All patterns run on normalised text (kefu.nlu.text.normalise), whose
character offsets equal the original's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kefu.nlu.text import NUMBER_PATTERN, as_int, parse_number


@dataclass(frozen=True)
class RuleEntity:
    entity: str
    start: int
    end: int
    value: object
    text: str


# 16 digits, optionally grouped by spaces or hyphens; never part of a longer digit run.
ORDER_NO = re.compile(r"(?<![\d])(\d(?:[ -]?\d){15})(?![\d])")
TRACKING_NO = re.compile(r"(?<![a-z0-9])((?:sf|yt|zt|jd|yd|em)\d{12})(?!\d)")
PHONE_TAIL_CUED = re.compile(
    r"(?:尾号|尾数|后四位|后4位|末四位|末4位|最后四位|最后4位|手机号?后四位|后四个数字?)"
    r"(?:是|为|:|：|是不是)?\s*(\d{4})(?!\d)"
)
# A message that is only four digits (and a particle or two) answers "what are
# the last four digits?"; years and prices come with 年/元/块 and do not match.
PHONE_TAIL_BARE = re.compile(
    r"^\s*(?:是|就是|我的是)?\s*(\d{4})\s*(?:这个|这个号|吧|啊|哈|呢|哦|呀|亲|嗯|的)*\s*[.!。!~]*\s*$"
)

_YUAN = r"(?:块钱|块|元|rmb|米)?"
PRICE_AFTER = re.compile(rf"({NUMBER_PATTERN}){_YUAN}\s*(?:以内|以下|之内|内|左右|上下|封顶|以里|不到|出头)")
PRICE_BEFORE = re.compile(
    rf"(?:预算|不超过|不要超过|别超过|不能超过|最多|最高|顶多|控制在|低于|少于|不高于|价位)(?:是|在|大概|大约|只有)?\s*({NUMBER_PATTERN}){_YUAN}"
)

# Shoe sizes with 码 (20-59), clothing sizes by letters, standing alone.
SIZE = re.compile(r"(?<![\da-z])(?:([2-5]\d)\s*码|(xxxl|xxl|xl|l|m|s)\s*(?:码|号)?|(均码))(?![a-z\d])")

SCORE_STARS = re.compile(r"([1-5一二三四五])\s*(?:颗星|星|分)(?![钟])")
# Longest first, so 很不满意 wins over 不满意 and 满意.
# 太差了 / 很差 are left out: they are complaints far more often than ratings.
SCORE_WORDS = (
    ("非常不满意", 1),
    ("很不满意", 1),
    ("特别不满意", 1),
    ("极不满意", 1),
    ("差评", 1),
    ("不太满意", 2),
    ("不满意", 2),
    ("不怎么样", 2),
    ("一般般", 3),
    ("一般", 3),
    ("还行", 3),
    ("凑合", 3),
    ("中评", 3),
    ("非常满意", 5),
    ("很满意", 5),
    ("超满意", 5),
    ("特别满意", 5),
    ("好评", 5),
    ("完美", 5),
    ("满意", 4),
    ("挺好", 4),
    ("不错", 4),
)
# 一般 is also "usually" (一般几天到货): a rating only at the end of a clause.
_CLAUSE_END = r"(?=$|[\s,.!?~，。！？、…吧吗啊呢哈了啦呀])"
SCORE_WORD = re.compile(
    "|".join(re.escape(word) + (_CLAUSE_END if word.startswith("一般") else "") for word, _ in SCORE_WORDS)
)
_SCORE_VALUES = dict(SCORE_WORDS)
_STAR_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5}


def _overlaps(a: RuleEntity, taken: list[RuleEntity]) -> bool:
    return any(a.start < b.end and b.start < a.end for b in taken)


# "质量有问题" names the reason 质量, "质量问题" the whole phrase: DIET's span
# for it varied between trainings (issue 12), the conversation tests hold
# the bot to these two.
REASON_QUALITY = re.compile(r"质量问题|质量(?=有问题|有点问题)")


# Which notices 订阅 / 退订 is about (entity notice_kind, read by
# action_marketing_consent). A service word before 通知/提醒/消息/推送
# names the service notices; 所有/全部 通知, or a bare 通知 that names no
# kind (退订通知), names all of them. Anything that says 优惠/活动/… is the
# marketing notices, the intents' default, and gets no entity. "通知我"
# (notify me) is a verb, not the notices.
_NOTICE_NOUN = r"(?:通知|提醒|消息|推送|短信)"
NOTICE_SERVICE = re.compile(
    r"(?:物流|发货|快递|派送|配送|签收|包裹|订单|售后|退款|退货|服务|催付|付款|支付)"
    r"(?:进度|状态|动态|信息|相关|方面|类)?(?:的)?" + _NOTICE_NOUN
)
NOTICE_ALL = re.compile(r"(?:所有|全部|一切|任何|什么)(?:的)?" + _NOTICE_NOUN + r"|通知(?!我)")
NOTICE_MARKETING = re.compile(r"优惠|活动|促销|营销|广告|推广|福利|秒杀|折扣|上新|券|大促|降价")


def extract(text: str) -> list[RuleEntity]:
    """Entities found in normalised `text`, without overlaps, in text order."""
    found: list[RuleEntity] = []

    def add(entity: str, match: re.Match, group: int, value: object) -> None:
        start, end = match.span(group)
        candidate = RuleEntity(entity, start, end, value, text[start:end])
        if not _overlaps(candidate, found):
            found.append(candidate)

    for match in TRACKING_NO.finditer(text):
        add("tracking_no", match, 1, match.group(1).upper())
    for match in ORDER_NO.finditer(text):
        add("order_no", match, 1, re.sub(r"[ -]", "", match.group(1)))
    for match in PHONE_TAIL_CUED.finditer(text):
        add("phone_tail", match, 1, match.group(1))
    bare = PHONE_TAIL_BARE.match(text)
    if bare:
        add("phone_tail", bare, 1, bare.group(1))
    for match in SIZE.finditer(text):
        add("size", match, 0, match.group(0).replace(" ", "").upper())
    for pattern in (PRICE_AFTER, PRICE_BEFORE):
        for match in pattern.finditer(text):
            value = as_int(parse_number(match.group(1)))
            if value and value > 0:
                add("price_max", match, 0, value)
    for match in REASON_QUALITY.finditer(text):
        add("reason", match, 0, match.group(0))
    for match in SCORE_STARS.finditer(text):
        digit = match.group(1)
        add("score", match, 0, int(digit) if digit.isdigit() else _STAR_DIGITS[digit])
    for match in SCORE_WORD.finditer(text):
        add("score", match, 0, _SCORE_VALUES[match.group(0)])
    service = NOTICE_SERVICE.search(text)
    if service:
        add("notice_kind", service, 0, "service")
    elif not NOTICE_MARKETING.search(text):
        every = NOTICE_ALL.search(text)
        if every:
            add("notice_kind", every, 0, "all")
    return sorted(found, key=lambda e: e.start)
