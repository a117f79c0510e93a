"""Our NLU components' logic, without training a model."""

from __future__ import annotations

import pytest

from kefu.nlu.catalogue import CatalogueMatcher
from kefu.nlu.catalogue_export import catalogue_terms, render_jieba_dictionary, render_training_data
from kefu.nlu.rules import extract
from kefu.nlu.text import normalise, parse_number
from kefu.shop.catalogue_data import catalogue
from kefu.shop.privacy import contains_sensitive, mask_sensitive
from kefu.shop.views import CatalogueTerms


@pytest.mark.parametrize(
    "text, expected",
    [
        ("訂單退貨", "订单退货"),
        ("ＡｉｒＰｏｄｓ，３０００？", "airpods,3000?"),
        ("iPhone\u300015", "iphone 15"),
        ("乾淨", "干净"),
    ],
)
def test_normalise_is_length_preserving(text, expected):
    assert normalise(text) == expected
    assert len(normalise(text)) == len(text)


@pytest.mark.parametrize(
    "text, value",
    [
        ("三千", 3000),
        ("三千五", 3500),
        ("两百", 200),
        ("2k", 2000),
        ("1.5k", 1500),
        ("1万5", 15000),
        ("一万二千", 12000),
        ("五百", 500),
        ("3,999", 3999),
        ("十五", 15),
        ("两万", 20000),
        ("八百八十八", 888),
    ],
)
def test_chinese_numerals(text, value):
    assert parse_number(text) == value


def _entities(text):
    return [(e.entity, e.value) for e in extract(normalise(text))]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("订单号：2026000000000001", [("order_no", "2026000000000001")]),
        ("单号 2026 0000 0000 0001 到哪了", [("order_no", "2026000000000001")]),
        ("尾号5678", [("phone_tail", "5678")]),
        ("手机后四位是 1234", [("phone_tail", "1234")]),
        ("8000", [("phone_tail", "8000")]),
        ("运单号SF123456789012", [("tracking_no", "SF123456789012")]),
        ("推荐一款三千以内的手机", [("price_max", 3000)]),
        ("2k以下的耳机", [("price_max", 2000)]),
        ("五百块左右", [("price_max", 500)]),
        ("预算3000", [("price_max", 3000)]),
        ("不超过两千五的电脑", [("price_max", 2500)]),
        ("五星", [("score", 5)]),
        ("1分", [("score", 1)]),
        ("很不满意", [("score", 1)]),
        ("不满意", [("score", 2)]),
        ("差评", [("score", 1)]),
        ("等了1分钟", []),
        ("空军一号42码有吗", [("size", "42码")]),
        ("要XL的", [("size", "XL")]),
        ("L码还有吗", [("size", "L码")]),
        ("airpods pro max", []),
        ("我的手机号是13800138000", []),
        ("20260000000000019", []),  # 17 digits: not an order number
    ],
)
def test_rule_entities(text, expected):
    assert _entities(text) == expected


@pytest.fixture(scope="module")
def matcher():
    terms = CatalogueTerms(
        products={item.name: item.aliases for item in catalogue()},
        brands=tuple(sorted({item.brand for item in catalogue()})),
        categories=tuple(sorted({item.category for item in catalogue()})),
    )
    return CatalogueMatcher(catalogue_terms(terms))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("小米14多少钱", [("product", "小米14")]),
        ("我想买iPhone15", [("product", "iPhone 15")]),
        ("iphone 15 pro有货吗", [("product", "iPhone 15 Pro")]),
        ("小米14Pro什么价", [("product", "小米14 Pro")]),
        ("苹果15多少钱", [("product", "iPhone 15")]),
        ("小迷14有货没", [("product", "小米14")]),  # homophone typo
        ("华为mate60pro还有吗", [("product", "华为Mate 60 Pro")]),
        ("苹果的耳机推荐一个", [("brand", "Apple"), ("category", "耳机")]),
        ("烟台苹果甜吗", [("product", "烟台红富士苹果")]),
        ("推荐个笔记本", [("category", "电脑")]),
        ("x1000", []),
        ("手机尾号5678", []),
        ("手机号换了", []),
        ("手机坏了", [("category", "手机")]),
        ("今天天气怎么样", []),
    ],
)
def test_catalogue_matcher(matcher, text, expected):
    assert [(m.entity, m.value) for m in matcher.find(normalise(text))] == expected


def test_catalogue_export_is_deterministic_and_has_synonyms():
    terms = CatalogueTerms(products={"iPhone 15": ("苹果15", "iphone15")}, brands=("Apple",), categories=("手机",))
    entity_terms = catalogue_terms(terms)
    data = render_training_data(entity_terms)
    assert data == render_training_data(catalogue_terms(terms))
    assert "- lookup: product" in data and "- synonym: iPhone 15" in data and "    - 苹果15" in data
    dictionary = render_jieba_dictionary(entity_terms)
    assert "iphone15 100000 nz" in dictionary and "苹果15 100000 nz" in dictionary


@pytest.mark.parametrize(
    "text, masked",
    [
        ("卡号6222021234567890128", "卡号6222***********0128"),
        ("身份证11010519491231002X", "身份证1101**********002X"),
        ("订单2026000000000001", "订单2026000000000001"),
        ("订单1000000000834377", "订单1000000000834377"),
    ],
)
def test_sensitive_numbers_are_masked(text, masked):
    assert mask_sensitive(text) == masked
    assert contains_sensitive(text) is (text != masked)


@pytest.mark.parametrize(
    "text, masked",
    [
        ("卡号６２２２０２１２３４５６７８９０１２８", "卡号6222***********0128"),
        ("卡号6222\u30000212\u30003456\u30007890\u3000128。", "卡号6222***********0128。"),
        ("卡号6222\xa00212\xa03456\xa07890128", "卡号6222***********0128"),
        ("卡号622202\u200b123456\u200b7890128", "卡号6222***********0128"),
        ("卡号6222.0212.3456.7890128", "卡号6222***********0128"),
        ("身份证110105 19491231 002X，谢谢", "身份证1101**********002X，谢谢"),
        ("订单2026000000000001 手机1234", "订单2026000000000001 手机1234"),
        ("价格3.999.00元, 订单 2026000000000001", "价格3.999.00元, 订单 2026000000000001"),
    ],
)
def test_disguised_sensitive_numbers_are_found_on_normalised_digits(text, masked):
    assert mask_sensitive(text) == masked


def test_a_number_past_the_nlu_cut_is_masked_before_the_cut():
    from rasa.shared.nlu.training_data.message import Message

    from kefu.nlu.components import RAW_TEXT, ChineseTextNormalizer, SensitiveDataGuard

    for text in ("啊" * 600 + "卡号6222021234567890128", "好" * 505 + "6222021234567890128"):
        message = Message(data={"text": text, "intent": {"name": "greet", "confidence": 0.9}})
        ChineseTextNormalizer({}).process([message])
        SensitiveDataGuard().process([message])
        assert message.get("intent")["name"] == "sensitive_info"
        for seen in (message.get("text"), message.get(RAW_TEXT)):
            assert "0212345678" not in seen and "62220212" not in seen
        assert message.get(RAW_TEXT).endswith("6222***********0128")


def test_training_annotations_align_with_rasas_own_tokens(tmp_path):
    """Rasa's "Misaligned entity annotation" warning, raised as an error: the
    training data goes through our normaliser and Rasa's JiebaTokenizer with
    the generated dictionary, exactly as in training, then through Rasa's own
    check (EntityExtractorMixin.check_correct_entity_annotations)."""
    import warnings
    from pathlib import Path

    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.nlu.extractors.extractor import EntityExtractorMixin
    from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
    from rasa.shared.nlu.training_data.loading import load_data

    from kefu.nlu.components import ChineseTextNormalizer

    root = Path(__file__).resolve().parents[1]
    dictionary = root / "var" / "nlu" / "jieba"
    if not (dictionary / "userdict.txt").exists():
        pytest.skip("no jieba dictionary: run `python -m kefu.cli nlu export`")
    data = load_data(str(root / "data" / "nlu"))
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), "test")
    ChineseTextNormalizer({}).process_training_data(data)
    tokenizer = JiebaTokenizer.create(
        {**JiebaTokenizer.get_default_config(), "dictionary_path": str(dictionary)},
        storage,
        Resource("jieba"),
        context,
    )
    tokenizer.process_training_data(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        EntityExtractorMixin.check_correct_entity_annotations(data)
    misaligned = [str(w.message).splitlines()[0] for w in caught if "Misaligned" in str(w.message)]
    assert not misaligned, "\n".join(misaligned)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("索尼xm5现在什么价", [("product", "索尼WH-1000XM5")]),  # brand + alias is one product
        ("苹果airpods pro2有货吗", None),
        ("苹果的耳机推荐一个", [("brand", "Apple"), ("category", "耳机")]),
    ],
)
def test_brand_before_its_product_is_part_of_the_product(matcher, text, expected):
    found = [(m.entity, m.value) for m in matcher.find(normalise(text))]
    if expected is None:
        assert [e for e, _ in found] == ["product"], found
    else:
        assert found == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("5678 这个", [("phone_tail", "5678")]),
        ("是1234", [("phone_tail", "1234")]),
        ("2024年买的", []),
        ("1234元", []),
        ("质量太差了 我要投诉", []),  # a complaint, not a rating
    ],
)
def test_more_rule_entities(text, expected):
    assert _entities(text) == expected


@pytest.mark.parametrize(
    "text, guessed, expected",
    [
        ("12345", "goodbye", "inform"),  # a malformed order number is still an answer
        ("2026 0000 0000 0001", "affirm", "inform"),
        ("8000", "nlu_fallback", "inform"),
        ("88", "goodbye", "goodbye"),  # chat slang for bye stays what DIET said
        ("5", "rate_service", "rate_service"),
        ("订单12345", "order_status", "order_status"),  # words around the number: DIET decides
        ("asdfghjkl", "affirm", "nlu_fallback"),  # a run along one keyboard row is no answer
        ("qwerty", "affirm", "nlu_fallback"),
        ("???", "greet", "nlu_fallback"),  # punctuation alone (normalised from ？？？)
        ("hello", "greet", "greet"),
    ],
)
def test_a_bare_number_answers_a_question(text, guessed, expected):
    from rasa.shared.nlu.training_data.message import Message

    from kefu.nlu.components import BareNumberClassifier

    guess = {"name": guessed, "confidence": 0.5}
    diet_entity = {"entity": "reason", "value": text, "start": 0, "end": len(text), "extractor": "DIETClassifier"}
    message = Message(data={"text": text, "intent": guess, "intent_ranking": [guess], "entities": [diet_entity]})
    BareNumberClassifier().process([message])
    assert message.get("intent")["name"] == expected
    assert message.get("intent_ranking")[0]["name"] == expected
    # Noise sent to the fallback keeps no entity DIET may have seen in it.
    assert message.get("entities") == (
        [] if expected == "nlu_fallback" and guessed != "nlu_fallback" else [diet_entity]
    )


def test_an_unclear_message_becomes_the_fallback_and_the_runner_up_stays_next():
    from rasa.shared.nlu.training_data.message import Message

    from kefu.nlu.components import UnclearAsFallback

    ranking = [{"name": "unclear", "confidence": 0.7}, {"name": "track_shipment", "confidence": 0.2}]
    message = Message(data={"text": "那个呢", "intent": ranking[0], "intent_ranking": ranking})
    request = Message(data={"text": "快递到哪了", "intent": ranking[1], "intent_ranking": ranking[::-1]})
    UnclearAsFallback().process([message, request])
    assert message.get("intent") == {"name": "nlu_fallback", "confidence": 0.7}
    # rasa test nlu undoes a fallback by reading the next entry: unclear, a miss.
    assert [r["name"] for r in message.get("intent_ranking")] == ["nlu_fallback", "unclear", "track_shipment"]
    assert request.get("intent")["name"] == "track_shipment"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("一般几天到货", []),
        ("一般多久发货", []),
        ("一般", [("score", 3)]),
        ("感觉一般吧", [("score", 3)]),
        ("服务一般般，还行", [("score", 3), ("score", 3)]),
    ],
)
def test_yiban_is_a_rating_only_at_the_end_of_a_clause(text, expected):
    assert [(e.entity, e.value) for e in extract(text) if e.entity == "score"] == expected


@pytest.mark.parametrize(
    "text, span",
    [
        ("订单2026000000000001质量有问题 我要退货", "质量"),
        ("质量问题", "质量问题"),
        ("这个质量有点问题", "质量"),
    ],
)
def test_a_quality_reason_is_found_by_rule(text, span):
    from kefu.nlu.rules import extract

    reasons = [e for e in extract(text) if e.entity == "reason"]
    assert [(e.text, e.value) for e in reasons] == [(span, span)]
