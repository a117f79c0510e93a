"""Product questions, recommendations and promotions, from the catalogue."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import call, failures_answered, latest_entity, latest_intent, product_service
from kefu.shop.formatting import china_time, yuan
from kefu.shop.views import ProductView

logger = logging.getLogger(__name__)

LOW_STOCK = 10
MAX_RECOMMENDATIONS = 3


def product_card(product: ProductView) -> dict[str, Any]:
    """The chat page's product card (see docs/payloads.md)."""
    return {
        "type": "product_card",
        "name": product.name,
        "price": yuan(product.price_cents),
        "image": product.image_url,
        "stock": product.stock,
        "button": {"title": "问问有没有货", "payload": f'/product_stock{{"product": "{product.name}"}}'},
    }


class ActionProductInfo(Action):
    """Price, stock and specs of the product asked about (or the one under discussion)."""

    def name(self) -> str:
        return "action_product_info"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        name = latest_entity(tracker, "product") or tracker.get_slot("product")
        if not name:
            brand, category = latest_entity(tracker, "brand"), latest_entity(tracker, "category")
            if brand or category:
                return await ActionRecommend().run(dispatcher, tracker, domain)
            dispatcher.utter_message(response="utter_ask_which_product")
            return []
        product = await call(product_service().product, name)
        if product is None:
            await self._unknown(dispatcher, name)
            return [SlotSet("product", None)]
        intent = latest_intent(tracker)
        if intent == "product_stock":
            self._stock(dispatcher, product, tracker)
        elif intent == "product_spec":
            self._spec(dispatcher, product, tracker)
        else:
            self._price(dispatcher, product)
        return [SlotSet("product", product.name), SlotSet("resolved", True)]

    async def _unknown(self, dispatcher: CollectingDispatcher, name: str) -> None:
        similar = await call(product_service().recommend, text=name[:8], limit=3)
        suggestions = ""
        if similar:
            suggestions = "、".join(p.name for p in similar)
        dispatcher.utter_message(
            response="utter_product_unknown",
            name=name[:30],
            suggestions=f"您是不是想找：{suggestions}？" if suggestions else "",
        )

    @staticmethod
    def _stock_response(product: ProductView) -> tuple[str, dict[str, Any]]:
        if product.stock <= 0:
            return "utter_product_out_of_stock", {}
        if product.stock < LOW_STOCK:
            return "utter_product_low_stock", {"stock": product.stock}
        return "utter_product_in_stock", {}

    def _price(self, dispatcher: CollectingDispatcher, product: ProductView) -> None:
        dispatcher.utter_message(
            response="utter_product_price",
            name=product.name,
            price=yuan(product.price_cents),
            stock_note="目前有货～" if product.in_stock else "不过目前暂时缺货。",
            json_message=product_card(product),
        )

    def _stock(self, dispatcher: CollectingDispatcher, product: ProductView, tracker: Tracker) -> None:
        for variant, options in (("size", product.sizes), ("color", product.colors)):
            asked = latest_entity(tracker, variant)
            if asked and options:
                matched = next(
                    (
                        o
                        for o in options
                        if o.lower() == str(asked).lower().replace("码", "") or o.lower() == str(asked).lower()
                    ),
                    None,
                )
                if matched is None:
                    dispatcher.utter_message(
                        response="utter_product_variant_missing",
                        name=product.name,
                        variant=asked,
                        options="、".join(options),
                    )
                    return
        response, values = self._stock_response(product)
        if product.stock <= 0:
            restock = (
                ("utter_product_restock_date", {"date": china_time(product.restock_at, "%m月%d日")})
                if product.restock_at
                else ("utter_product_restock_unknown", {})
            )
            dispatcher.utter_message(response=response, name=product.name, restock="")
            dispatcher.utter_message(response=restock[0], **restock[1])
            return
        dispatcher.utter_message(response=response, name=product.name, **values, json_message=product_card(product))

    def _spec(self, dispatcher: CollectingDispatcher, product: ProductView, tracker: Tracker) -> None:
        specs = "\n".join(f"· {k}：{v}" for k, v in product.specs) or product.description
        options = []
        if product.colors:
            options.append("颜色：" + "、".join(product.colors))
        if product.sizes:
            options.append("尺码：" + "、".join(product.sizes))
        dispatcher.utter_message(
            response="utter_product_spec", name=product.name, specs=specs, options="；".join(options)
        )


class ActionRecommend(Action):
    """Up to three existing products within budget, in stock first, with why."""

    def name(self) -> str:
        return "action_recommend"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        category = latest_entity(tracker, "category")
        brand = latest_entity(tracker, "brand")
        budget = latest_entity(tracker, "price_max")
        if not (category or brand):
            product = latest_entity(tracker, "product")
            if product:
                known = await call(product_service().product, product)
                category = known.category if known else None
        if not (category or brand or budget):
            dispatcher.utter_message(response="utter_ask_recommend_category")
            return []
        budget_value = _number(budget)
        products = await call(
            product_service().recommend,
            category=category,
            brand=brand,
            max_price_yuan=budget_value,
            limit=MAX_RECOMMENDATIONS,
        )
        scope = "".join(
            filter(
                None,
                [
                    f"{int(budget_value)}元以内" if budget_value else "",
                    f"{brand}" if brand else "",
                    f"的{category}" if category and (brand or budget_value) else (category or "的商品"),
                ],
            )
        )
        if not products:
            dispatcher.utter_message(response="utter_recommend_none", scope=scope)
            return []
        dispatcher.utter_message(response="utter_recommend_intro", count=len(products), scope=scope)
        for rank, product in enumerate(products, start=1):
            why = product.description.split("，")[1] if "，" in product.description else product.description
            if not product.in_stock:
                why = f"{why}（暂时缺货）"
            dispatcher.utter_message(
                response="utter_recommend_item",
                rank=rank,
                name=product.name,
                price=yuan(product.price_cents),
                why=why.rstrip("。"),
                json_message=product_card(product),
            )
        return [SlotSet("resolved", True), SlotSet("product", products[0].name)]


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


class ActionPromotions(Action):
    def name(self) -> str:
        return "action_promotions"

    @failures_answered
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        promotions = await call(product_service().promotions)
        if not promotions:
            dispatcher.utter_message(response="utter_no_promotions")
            return []
        dispatcher.utter_message(response="utter_promotions_intro")
        for promotion in promotions:
            dispatcher.utter_message(
                response="utter_promotion_item",
                title=promotion.title,
                description=promotion.description,
                ends=china_time(promotion.ends_at, "%m月%d日"),
                code=f"优惠码 {promotion.code}" if promotion.code else "",
            )
        return [SlotSet("resolved", True)]
