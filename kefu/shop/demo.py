"""Deterministic demo shop: customers, orders, shipments, tickets, promotions.

Same seed, same rows: every value comes from one `random.Random(seed)`
except the timestamps, which are offsets from the moment of seeding, so that
the service rules (7-day returns, 15-day exchanges, warranties) always have
live cases. The showcase customers and orders below have fixed numbers that
demos, docs and conversation tests can quote.

Rows are written with SQLAlchemy Core in batches (ids assigned here), so the
same generator fills 1,000,000 orders in minutes for benchmarks.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from kefu.db.engine import database_url, describe_url, ensure_schema, get_engine, utcnow
from kefu.db.models import (
    AftersalesTicket,
    Base,
    Customer,
    Order,
    OrderItem,
    Product,
    ProductAlias,
    Promotion,
    ShipmentEvent,
)
from kefu.shop.catalogue_data import CatalogueItem, catalogue

logger = logging.getLogger(__name__)

DEFAULT_SEED = 20261124
BATCH_ORDERS = 5000

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉玲建国文斌宇浩凯佳欣怡晨阳雪婷琳晓东海波峰林亮飞鑫雨轩子涵梓"
PHONE_PREFIXES = (
    "130",
    "131",
    "132",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "155",
    "158",
    "159",
    "180",
    "181",
    "182",
    "186",
    "187",
    "188",
    "189",
    "191",
    "195",
    "198",
    "199",
)
REGIONS = (
    ("北京市", "北京市", ("朝阳区", "海淀区", "东城区", "丰台区")),
    ("上海市", "上海市", ("浦东新区", "徐汇区", "静安区", "闵行区")),
    ("广东省", "广州市", ("天河区", "越秀区", "海珠区", "番禺区")),
    ("广东省", "深圳市", ("南山区", "福田区", "宝安区", "龙岗区")),
    ("浙江省", "杭州市", ("西湖区", "余杭区", "滨江区", "拱墅区")),
    ("江苏省", "南京市", ("鼓楼区", "玄武区", "江宁区", "建邺区")),
    ("四川省", "成都市", ("武侯区", "锦江区", "高新区", "成华区")),
    ("湖北省", "武汉市", ("洪山区", "江汉区", "武昌区", "汉阳区")),
    ("陕西省", "西安市", ("雁塔区", "碑林区", "未央区", "长安区")),
    ("山东省", "青岛市", ("市南区", "崂山区", "黄岛区", "李沧区")),
)
STREETS = (
    "建国路",
    "人民路",
    "中山路",
    "解放路",
    "长安街",
    "文三路",
    "科技园路",
    "学院路",
    "滨江大道",
    "青年路",
    "和平街",
    "光明路",
)
CARRIERS = (
    ("SF", "顺丰速运"),
    ("YT", "圆通速递"),
    ("ZT", "中通快递"),
    ("JD", "京东物流"),
    ("YD", "韵达快递"),
    ("EM", "EMS"),
)
HUBS = (
    "广州白云转运中心",
    "上海青浦转运中心",
    "杭州萧山转运中心",
    "武汉东西湖转运中心",
    "北京顺义转运中心",
    "成都双流转运中心",
)

# Random orders: (status, weight). The showcase adds at least one of each.
STATUS_WEIGHTS = (
    ("completed", 34),
    ("delivered", 18),
    ("shipped", 12),
    ("paid", 8),
    ("pending_payment", 7),
    ("cancelled", 9),
    ("refunding", 4),
    ("refunded", 8),
)


@dataclass(frozen=True)
class ShowcaseCustomer:
    key: str
    name: str
    phone: str
    wechat_openid: str | None


@dataclass(frozen=True)
class ShowcaseOrder:
    key: str
    order_no: str
    customer: str  # ShowcaseCustomer.key
    status: str
    age_days: float  # created this long before seeding
    delivered_days_ago: float | None
    products: tuple[tuple[str, str | None, str | None], ...]  # (name, size, color)
    note: str


SHOWCASE_CUSTOMERS = (
    ShowcaseCustomer("wang", "王小明", "13800138000", "oKefuDemoWangXiaoMing0000001"),
    ShowcaseCustomer("li", "李娜", "13912345678", None),
    ShowcaseCustomer("zhang", "张伟", "18600001234", "oKefuDemoZhangWei00000000002"),
)

SHOWCASE_ORDERS = (
    ShowcaseOrder(
        "delivered_2d",
        "2026000000000001",
        "wang",
        "delivered",
        5,
        2,
        (("AirPods 3", None, "白色"),),
        "签收2天，可七天无理由退货",
    ),
    ShowcaseOrder(
        "delivered_2d_custom",
        "2026000000000002",
        "wang",
        "delivered",
        8,
        2,
        (("定制刻字保温杯", None, None),),
        "签收2天，定制商品不支持无理由退货",
    ),
    ShowcaseOrder(
        "delivered_10d",
        "2026000000000003",
        "wang",
        "delivered",
        13,
        10,
        (("优衣库男士纯棉T恤", "L", "白色"),),
        "签收10天：超过7天不能退货，15天内可换货",
    ),
    ShowcaseOrder(
        "delivered_100d",
        "2026000000000004",
        "wang",
        "completed",
        104,
        100,
        (("小米14", None, "黑色"),),
        "签收100天，12个月保修内可维修",
    ),
    ShowcaseOrder(
        "delivered_400d",
        "2026000000000005",
        "wang",
        "completed",
        404,
        400,
        (("华为P60", None, "羽砂黑"),),
        "签收400天，已过保修期",
    ),
    ShowcaseOrder(
        "paid_unshipped",
        "2026000000000006",
        "wang",
        "paid",
        1,
        None,
        (("iPhone 15", None, "蓝色"),),
        "已付款未发货，可取消并退款、可改地址",
    ),
    ShowcaseOrder(
        "pending_payment",
        "2026000000000007",
        "wang",
        "pending_payment",
        0.1,
        None,
        (("小米平板6", None, None),),
        "待付款，可取消、可改地址",
    ),
    ShowcaseOrder(
        "shipped",
        "2026000000000008",
        "wang",
        "shipped",
        3,
        None,
        (("索尼WH-1000XM5", None, "黑色"),),
        "运输中，有物流轨迹",
    ),
    ShowcaseOrder(
        "cancelled", "2026000000000009", "wang", "cancelled", 20, None, (("Redmi K70", None, "墨羽"),), "已取消"
    ),
    ShowcaseOrder(
        "refunding",
        "2026000000000010",
        "wang",
        "refunding",
        4,
        None,
        (("小米Buds 4 Pro", None, "月影黑"),),
        "退款中，有一张退款工单",
    ),
    ShowcaseOrder(
        "completed_multi",
        "2026000000000011",
        "wang",
        "completed",
        33,
        30,
        (("Nike Air Force 1", "42", "白色"), ("优衣库男士摇粒绒外套", "XL", "黑色")),
        "两件商品，签收30天",
    ),
    ShowcaseOrder(
        "li_delivered_5d",
        "2026000000000012",
        "li",
        "delivered",
        8,
        5,
        (("Adidas Samba", "39", "黑白"),),
        "李娜的订单，签收5天",
    ),
    ShowcaseOrder(
        "zhang_shipped",
        "2026000000000013",
        "zhang",
        "shipped",
        2,
        None,
        (("华为Mate 60 Pro", None, "雅川青"),),
        "张伟的订单，运输中",
    ),
)
SHOWCASE_REFUND_TICKET_NO = "AS20260000000001"


def showcase_customer(key: str) -> ShowcaseCustomer:
    return next(c for c in SHOWCASE_CUSTOMERS if c.key == key)


def showcase() -> dict[str, dict]:
    """Showcase case name -> order number, owner, phone and its last four digits."""
    result = {}
    for order in SHOWCASE_ORDERS:
        customer = showcase_customer(order.customer)
        result[order.key] = {
            "order_no": order.order_no,
            "status": order.status,
            "customer": customer.name,
            "phone": customer.phone,
            "phone_tail": customer.phone[-4:],
            "note": order.note,
        }
    return result


# --- generation ---------------------------------------------------------------


class _Generator:
    def __init__(self, seed: int, now: datetime, orders: int):
        self.rng = random.Random(seed)
        self.now = now
        self.order_count = orders
        self.customer_count = max(200, orders // 5)
        self.items = catalogue()
        self.product_ids = {item.name: index + 1 for index, item in enumerate(self.items)}
        self.order_id = 0
        self.item_id = 0
        self.event_id = 0
        self.ticket_id = 0
        self.addresses: dict[int, str] = {}

    # customers and catalogue -------------------------------------------------

    def product_rows(self) -> tuple[list[dict], list[dict]]:
        products, aliases = [], []
        alias_id = 0
        for product_id, item in enumerate(self.items, start=1):
            products.append(
                dict(
                    id=product_id,
                    sku=item.sku,
                    name=item.name,
                    brand=item.brand,
                    category=item.category,
                    price_cents=int(round(item.price_yuan * 100)),
                    stock=item.stock,
                    warranty_months=item.warranty_months,
                    returnable=item.returnable,
                    description=item.description,
                    sizes=",".join(item.sizes),
                    colors=",".join(item.colors),
                    specs=";".join(f"{k}:{v}" for k, v in item.specs),
                    image_url=f"/static/products/{item.sku}.svg",
                    restock_at=(self.now + timedelta(days=item.restock_days)) if item.restock_days else None,
                )
            )
            for alias in dict.fromkeys(item.aliases):
                alias_id += 1
                aliases.append(dict(id=alias_id, product_id=product_id, alias=alias))
        return products, aliases

    def _address(self) -> str:
        province, city, districts = self.rng.choice(REGIONS)
        district = self.rng.choice(districts)
        head = province if province == city else f"{province}{city}"
        return (
            f"{head}{district}{self.rng.choice(STREETS)}{self.rng.randint(1, 999)}号"
            f"{self.rng.randint(1, 30)}栋{self.rng.randint(1, 6)}单元{self.rng.randint(101, 2802)}室"
        )

    def customer_rows(self) -> Iterator[list[dict]]:
        batch = []
        for customer_id in range(1, self.customer_count + 1):
            created = self.now - timedelta(days=self.rng.uniform(30, 900))
            if customer_id <= len(SHOWCASE_CUSTOMERS):
                showcase_row = SHOWCASE_CUSTOMERS[customer_id - 1]
                name, phone, openid = showcase_row.name, showcase_row.phone, showcase_row.wechat_openid
                self.rng.random()  # keep the stream aligned whatever the showcase holds
            else:
                name = self.rng.choice(SURNAMES) + "".join(
                    self.rng.choice(GIVEN) for _ in range(self.rng.choice((1, 2)))
                )
                phone = self.rng.choice(PHONE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
                openid = f"oKefu{self.rng.getrandbits(100):023x}"[:28] if self.rng.random() < 0.3 else None
            self.addresses[customer_id] = self._address()
            batch.append(dict(id=customer_id, name=name, phone=phone, wechat_openid=openid, created_at=created))
            if len(batch) >= 20000:
                yield batch
                batch = []
        if batch:
            yield batch

    # orders ------------------------------------------------------------------

    def _order_no(self, index: int) -> str:
        # A bijection of the index onto 15 digits (7919 is coprime with 10**15):
        # unique without a lookup table, and not guessable from a neighbour.
        # The leading 1 is no card issuer's prefix, so an order number is
        # never mistaken for a bank card (kefu.shop.privacy).
        return "1" + f"{(index * 7919 + 104729) % 10**15:015d}"

    def _tracking_no(self, index: int) -> tuple[str, str]:
        prefix, name = CARRIERS[index % len(CARRIERS)]
        return f"{prefix}{(index * 104723 + 7) % 10**12:012d}", name

    def _timeline(self, status: str, age_days: float | None, delivered_days_ago: float | None) -> dict:
        rng, now = self.rng, self.now
        if age_days is None:
            age_days = {
                "pending_payment": rng.uniform(0.01, 1.5),
                "paid": rng.uniform(0.05, 3),
                "shipped": rng.uniform(1, 5),
                "delivered": rng.uniform(3, 16),
                "completed": rng.uniform(18, 600),
                "cancelled": rng.uniform(0.5, 300),
                "refunding": rng.uniform(1, 10),
                "refunded": rng.uniform(10, 400),
            }[status]
        created = now - timedelta(days=age_days)
        times = dict(created_at=created, paid_at=None, shipped_at=None, delivered_at=None)
        if status == "pending_payment" or (status == "cancelled" and rng.random() < 0.5):
            return times
        paid = times["paid_at"] = created + timedelta(minutes=rng.uniform(1, 30))
        if status in ("paid", "cancelled") or (status in ("refunding", "refunded") and rng.random() < 0.5):
            return times
        if delivered_days_ago is not None:
            delivered = now - timedelta(days=delivered_days_ago)
            times["shipped_at"] = max(paid + timedelta(hours=2), delivered - timedelta(days=2))
            times["delivered_at"] = delivered
            return times
        shipped = times["shipped_at"] = min(paid + timedelta(hours=rng.uniform(4, 30)), now - timedelta(hours=1))
        if status != "shipped":
            times["delivered_at"] = min(shipped + timedelta(days=rng.uniform(1, 3)), now - timedelta(minutes=30))
        return times

    def _events(self, order_id: int, times: dict, carrier: str) -> list[dict]:
        if times["shipped_at"] is None:
            return []
        end = times["delivered_at"] or self.now
        start = times["shipped_at"]
        hub_a, hub_b = self.rng.sample(HUBS, 2)
        steps = [
            ("发货仓", f"【{carrier}】已揽收，快件正在发往{hub_a}"),
            (hub_a, f"快件已到达{hub_a}，正在分拣"),
            (hub_b, f"快件已到达{hub_b}，准备发往派送网点"),
        ]
        if times["delivered_at"] is not None:
            steps += [("派送网点", "快件正在派送中，快递员会尽快送达"), ("收件地址", "快件已签收，感谢使用")]
        span = max((end - start).total_seconds(), 3600)
        events = []
        for index, (location, description) in enumerate(steps):
            self.event_id += 1
            moment = start + timedelta(seconds=span * index / max(len(steps) - 1, 1))
            if times["delivered_at"] is None:
                moment = start + timedelta(seconds=span * 0.8 * index / len(steps))
            events.append(
                dict(
                    id=self.event_id, order_id=order_id, happened_at=moment, location=location, description=description
                )
            )
        return events

    def _order(
        self,
        index: int,
        customer_id: int,
        order_no: str,
        status: str,
        lines: list[tuple[CatalogueItem, str | None, str | None]],
        age_days: float | None = None,
        delivered_days_ago: float | None = None,
    ) -> tuple[dict, list[dict], list[dict]]:
        self.order_id += 1
        order_id = self.order_id
        times = self._timeline(status, age_days, delivered_days_ago)
        items, total = [], 0
        for item, size, color in lines:
            self.item_id += 1
            quantity = 1 if item.price_yuan > 500 else self.rng.choice((1, 1, 1, 2, 3))
            price = int(round(item.price_yuan * 100))
            total += price * quantity
            items.append(
                dict(
                    id=self.item_id,
                    order_id=order_id,
                    product_id=self.product_ids[item.name],
                    quantity=quantity,
                    unit_price_cents=price,
                    size=size,
                    color=color,
                )
            )
        tracking_no, carrier = (None, None)
        if times["shipped_at"] is not None:
            tracking_no, carrier = self._tracking_no(index)
        order = dict(
            id=order_id,
            order_no=order_no,
            customer_id=customer_id,
            status=status,
            total_cents=total,
            carrier=carrier,
            tracking_no=tracking_no,
            ship_address=self.addresses[customer_id],
            **times,
        )
        return order, items, self._events(order_id, times, carrier or "")

    def _random_lines(self) -> list[tuple[CatalogueItem, str | None, str | None]]:
        lines = []
        for item in self.rng.sample(self.items, self.rng.choice((1, 1, 1, 2, 2, 3))):
            size = self.rng.choice(item.sizes) if item.sizes else None
            color = self.rng.choice(item.colors) if item.colors else None
            lines.append((item, size, color))
        return lines

    def order_batches(self, customers: dict[int, tuple[str, str]]) -> Iterator[tuple[list, list, list, list]]:
        """Yields (orders, items, events, tickets) in batches; showcase orders first."""
        by_name = {item.name: item for item in self.items}
        statuses = [s for s, _ in STATUS_WEIGHTS]
        weights = [w for _, w in STATUS_WEIGHTS]
        orders, items, events, tickets = [], [], [], []

        def add(customer_id: int, order: dict, order_items: list, order_events: list) -> None:
            name, phone = customers[customer_id]
            # Most parcels go to the customer themself; some to family or the office.
            if self.rng.random() < 0.85 or customer_id <= len(SHOWCASE_CUSTOMERS):
                order.update(ship_name=name, ship_phone=phone)
            else:
                order.update(
                    ship_name=self.rng.choice(SURNAMES) + self.rng.choice(GIVEN),
                    ship_phone=self.rng.choice(PHONE_PREFIXES) + f"{self.rng.randrange(10**8):08d}",
                )
            orders.append(order)
            items.extend(order_items)
            events.extend(order_events)
            if order["status"] in ("refunding", "refunded") or (
                order["status"] == "completed" and self.rng.random() < 0.02
            ):
                self.ticket_id += 1
                kind = (
                    "refund" if order["status"] != "completed" else self.rng.choice(("repair", "complaint", "exchange"))
                )
                ticket_status = {"refunding": "in_progress", "refunded": "closed"}.get(order["status"], "closed")
                ticket_no = (
                    SHOWCASE_REFUND_TICKET_NO
                    if order["order_no"] == SHOWCASE_ORDERS[9].order_no
                    else f"AS{self.ticket_id + 30000000:014d}"
                )
                tickets.append(
                    dict(
                        id=self.ticket_id,
                        ticket_no=ticket_no,
                        order_id=order["id"],
                        customer_id=customer_id,
                        kind=kind,
                        reason=self.rng.choice(("质量问题", "不喜欢", "尺码不合适", "发错货", "其他")),
                        status=ticket_status,
                        created_at=order["created_at"] + timedelta(hours=6),
                        request_key=f"seed:{order['order_no']}:{kind}",
                    )
                )

        customer_index = {c.key: i + 1 for i, c in enumerate(SHOWCASE_CUSTOMERS)}
        for index, case in enumerate(SHOWCASE_ORDERS):
            lines = [(by_name[name], size, color) for name, size, color in case.products]
            customer_id = customer_index[case.customer]
            order, order_items, order_events = self._order(
                index, customer_id, case.order_no, case.status, lines, case.age_days, case.delivered_days_ago
            )
            add(customer_id, order, order_items, order_events)

        for index in range(len(SHOWCASE_ORDERS), self.order_count):
            status = self.rng.choices(statuses, weights)[0]
            customer_id = self.rng.randint(1, self.customer_count)
            order, order_items, order_events = self._order(
                index, customer_id, self._order_no(index), status, self._random_lines()
            )
            add(customer_id, order, order_items, order_events)
            if len(orders) >= BATCH_ORDERS:
                yield orders, items, events, tickets
                orders, items, events, tickets = [], [], [], []
        if orders:
            yield orders, items, events, tickets

    def promotion_rows(self) -> list[dict]:
        now = self.now
        day = timedelta(days=1)
        return [
            dict(
                id=1,
                kind="campaign",
                title="双十二年终狂欢",
                description="全场满300减30，可与店铺券叠加",
                threshold_cents=30000,
                discount_cents=3000,
                category=None,
                starts_at=now - 3 * day,
                ends_at=now + 18 * day,
            ),
            dict(
                id=2,
                kind="coupon",
                title="新人专享券",
                description="新用户首单满99减10",
                code="XINREN10",
                threshold_cents=9900,
                discount_cents=1000,
                category=None,
                starts_at=now - 60 * day,
                ends_at=now + 300 * day,
            ),
            dict(
                id=3,
                kind="coupon",
                title="手机品类券",
                description="手机满3000减200",
                code="PHONE200",
                threshold_cents=300000,
                discount_cents=20000,
                category="手机",
                starts_at=now - day,
                ends_at=now + 10 * day,
            ),
            dict(
                id=4,
                kind="campaign",
                title="生鲜周三会员日",
                description="生鲜商品每周三9折",
                threshold_cents=None,
                discount_cents=None,
                category="生鲜",
                starts_at=now - 30 * day,
                ends_at=now + 60 * day,
            ),
            dict(
                id=5,
                kind="campaign",
                title="双十一大促",
                description="已结束",
                threshold_cents=20000,
                discount_cents=2500,
                category=None,
                starts_at=now - 30 * day,
                ends_at=now - 12 * day,
            ),
            dict(
                id=6,
                kind="coupon",
                title="年货节预告券",
                description="尚未开始",
                code="NIANHUO",
                threshold_cents=50000,
                discount_cents=5000,
                category=None,
                starts_at=now + 40 * day,
                ends_at=now + 60 * day,
            ),
        ]


def shop_is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return not conn.execute(select(func.count(Product.id))).scalar()


def reset_database(engine: Engine) -> None:
    Base.metadata.drop_all(engine)
    ensure_schema(engine)


def demo_rows(*, orders: int = 50, seed: int = DEFAULT_SEED, now: datetime | None = None) -> dict[str, list[dict]]:
    """The demo shop as rows per table, the same ones `seed` writes (for the
    in-memory repository of the fast tests, kefu.shop.memory)."""
    generator = _Generator(seed, now or utcnow(), max(orders, len(SHOWCASE_ORDERS)))
    products, aliases = generator.product_rows()
    rows: dict[str, list[dict]] = dict(
        products=products,
        product_aliases=aliases,
        promotions=generator.promotion_rows(),
        customers=[],
        orders=[],
        order_items=[],
        shipment_events=[],
        aftersales_tickets=[],
    )
    for batch in generator.customer_rows():
        rows["customers"] += batch
    customers = {row["id"]: (row["name"], row["phone"]) for row in rows["customers"]}
    for orders_rows, items, events, tickets in generator.order_batches(customers):
        rows["orders"] += orders_rows
        rows["order_items"] += items
        rows["shipment_events"] += events
        rows["aftersales_tickets"] += tickets
    return rows


def seed(
    engine: Engine | None = None,
    *,
    orders: int = 1000,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    progress: bool = False,
) -> dict[str, int]:
    """Fill an empty shop database; returns row counts."""
    engine = engine or get_engine()
    ensure_schema(engine)
    if not shop_is_empty(engine):
        raise RuntimeError("the shop database already has data; reseed with --reset")
    generator = _Generator(seed, now or utcnow(), max(orders, len(SHOWCASE_ORDERS)))
    counts = dict(
        products=0, customers=0, orders=0, order_items=0, shipment_events=0, aftersales_tickets=0, promotions=0
    )
    bar = _progress_bar(generator.order_count, progress)
    products, aliases = generator.product_rows()
    with engine.begin() as conn:
        conn.execute(Product.__table__.insert(), products)
        conn.execute(ProductAlias.__table__.insert(), aliases)
        conn.execute(Promotion.__table__.insert(), generator.promotion_rows())
    counts["products"], counts["promotions"] = len(products), 6
    customers: dict[int, tuple[str, str]] = {}
    for batch in generator.customer_rows():
        with engine.begin() as conn:
            conn.execute(Customer.__table__.insert(), batch)
        customers.update((row["id"], (row["name"], row["phone"])) for row in batch)
        counts["customers"] += len(batch)
    for orders_rows, items, events, tickets in generator.order_batches(customers):
        with engine.begin() as conn:
            conn.execute(Order.__table__.insert(), orders_rows)
            conn.execute(OrderItem.__table__.insert(), items)
            if events:
                conn.execute(ShipmentEvent.__table__.insert(), events)
            if tickets:
                conn.execute(AftersalesTicket.__table__.insert(), tickets)
        counts["orders"] += len(orders_rows)
        counts["order_items"] += len(items)
        counts["shipment_events"] += len(events)
        counts["aftersales_tickets"] += len(tickets)
        bar(len(orders_rows))
    bar(None)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
            _reset_sequences(conn)
    return counts


def _reset_sequences(conn) -> None:
    # Ids were assigned here; later inserts (tickets, ratings) must not collide.
    for table in Base.metadata.sorted_tables:
        if "id" in table.c:
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
            )


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="orders", file=sys.stderr, mininterval=0.5)

    def update(n: int | None) -> None:
        if n is None:
            bar.close()
        else:
            bar.update(n)

    return update


def seed_command(*, orders: int, reset: bool, if_empty: bool, seed: int = DEFAULT_SEED, progress: bool = True) -> int:
    engine = get_engine()
    ensure_schema(engine)
    where = describe_url(database_url())
    if reset:
        reset_database(engine)
    elif not shop_is_empty(engine):
        if if_empty:
            return 0
        print(f"kefu: the shop database at {where} already has data; use --reset to reseed", file=sys.stderr)
        return 1
    counts = globals()["seed"](engine, orders=orders, seed=seed, progress=progress)
    print(f"seeded {where}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def print_showcase() -> int:
    """The showcase orders as they are in the configured database."""
    from kefu.shop.repository import SqlShopRepository

    repository = SqlShopRepository()
    print(f"{'case':<22}{'order_no':<18}{'status':<17}{'customer':<8}{'phone':<13}{'tail':<6}note")
    for key, case in showcase().items():
        order = repository.find_order(case["order_no"])
        status = order.status if order else "(missing: reseed)"
        print(
            f"{key:<22}{case['order_no']:<18}{status:<17}{case['customer']:<8}{case['phone']:<13}{case['phone_tail']:<6}{case['note']}"
        )
    return 0
