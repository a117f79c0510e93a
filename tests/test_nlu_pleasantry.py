"""The request inside a message wrapped in a greeting or a thank-you
(kefu.nlu.pleasantry), without Rasa or a model."""

from __future__ import annotations

import pytest

from kefu.nlu.pleasantry import content_span, request_text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("你好,我想查一下订单", "我想查一下订单"),
        ("你好，我想退货，需要怎么操作?", "我想退货，需要怎么操作"),
        ("您好 请问运费多少", "请问运费多少"),
        ("在吗 我想问下我的单子怎么样了", "我想问下我的单子怎么样了"),
        ("在麽在麽 发货了没", "发货了没"),
        ("亲 这个多少钱", "这个多少钱"),
        ("hi 能开发票吗", "能开发票吗"),
        ("你好👋 我要退款", "我要退款"),
        ("帮我查下物流谢谢", "帮我查下物流"),
        ("查物流 谢谢🙏", "查物流"),
        ("帮我接一下人工吧 谢谢亲", "帮我接一下人工吧"),
        ("你好 帮我取消订单 麻烦了", "帮我取消订单"),
        ("帮我查下物流 万分感谢", "帮我查下物流"),
        ("好的 物流信息我看到了 谢谢你", "好的 物流信息我看到了"),
        # A question is still a request, even among closing words.
        ("问题解决了吗 谢谢", "问题解决了吗"),
    ],
)
def test_the_request_is_found_inside_pleasantries(text: str, expected: str) -> None:
    assert request_text(text) == expected
    start, end = content_span(text)
    assert text[start:end] == expected


@pytest.mark.parametrize(
    "text",
    [
        "你好",
        "在吗",
        "你好呀亲😊",
        "亲，在吗",
        "hello在吗",
        "您好呀 打扰啦",
        "亲亲在吗",
        "谢谢",
        "好的谢谢",
        "明白了 太感谢了亲",
        "那行 麻烦你了 谢谢哈",
        "收到 谢谢",
        # A statement that closes the question is no request: still a thank-you.
        "好的 我知道了 谢谢您",
        "好的 我没有别的问题了 谢谢",
        "嗯 那我再等等 谢谢啦",
        "好的 收到了 万分感谢",
        "明白 麻烦你了 谢谢",
        "问题已经解决了 非常感谢",
        "好的我去试试 谢谢啦",
        "行 那我等着 谢谢哈",
        # Not a pleasantry at all, or 亲/hi/客服 inside a word.
        "亲子装有吗",
        "hifi耳机推荐",
        "客服电话多少",
        "谢谢你帮我查 这下放心了",
    ],
)
def test_pleasantries_alone_and_words_that_only_start_alike_are_kept_whole(text: str) -> None:
    assert content_span(text) == (0, len(text))
