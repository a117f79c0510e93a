"""`kefu demo advance`: moves the demo shop along so a person can watch
notices arrive: parcels in transit go out for delivery and are delivered,
paid orders ship, the showcase unpaid order nears its closing time (then is
paid), open after-sales tickets are decided. Each run is one step; the
showcase customers (王小明 first) go first, then a few others."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine

from kefu.db.engine import session_scope, utcnow
from kefu.db.models import AftersalesTicket, Order, ShipmentEvent
from kefu.notices.triggers import UnpaidRule
from kefu.shop.demo import SHOWCASE_CUSTOMERS

OTHERS = 3  # customers beyond the showcase ones moved per step, per kind
SHOWCASE_UNPAID = "2026000000000007"


def _pick(rows: list, showcase_ids: set[int]) -> list:
    mine = [r for r in rows if r.customer_id in showcase_ids]
    return mine + [r for r in rows if r.customer_id not in showcase_ids][:OTHERS]


def advance(engine: Engine, now: datetime | None = None, unpaid: UnpaidRule | None = None) -> list[str]:
    """One step; a line per change, in Chinese for the person watching."""
    now = now or utcnow()
    unpaid = unpaid or UnpaidRule.from_env()
    showcase_ids = set(range(1, len(SHOWCASE_CUSTOMERS) + 1))
    lines: list[str] = []
    with session_scope(engine) as session:
        shipped = session.execute(select(Order).where(Order.status == "shipped").order_by(Order.id)).scalars().all()
        for order in _pick(list(shipped), showcase_ids):
            latest = session.execute(
                select(ShipmentEvent.description)
                .where(ShipmentEvent.order_id == order.id)
                .order_by(ShipmentEvent.happened_at.desc(), ShipmentEvent.id.desc())
                .limit(1)
            ).scalar()
            if latest and "派送中" in latest:
                session.add(
                    ShipmentEvent(
                        order_id=order.id, happened_at=now, location="收件地址", description="快件已签收，感谢使用"
                    )
                )
                order.status, order.delivered_at = "delivered", now
                lines.append(f"订单 {order.order_no}：已签收")
            else:
                session.add(
                    ShipmentEvent(
                        order_id=order.id,
                        happened_at=now,
                        location="派送网点",
                        description="快件正在派送中，快递员会尽快送达",
                    )
                )
                lines.append(f"订单 {order.order_no}：派送中")
        paid = session.execute(select(Order).where(Order.status == "paid").order_by(Order.id)).scalars().all()
        for order in _pick(list(paid), showcase_ids):
            order.status, order.shipped_at = "shipped", now
            order.carrier = order.carrier or "顺丰速运"
            order.tracking_no = order.tracking_no or f"SF{order.id:012d}"
            session.add(
                ShipmentEvent(
                    order_id=order.id,
                    happened_at=now,
                    location="发货仓",
                    description=f"【{order.carrier}】已揽收，快件正在发往转运中心",
                )
            )
            lines.append(f"订单 {order.order_no}：已发货（{order.carrier} {order.tracking_no}）")
        waiting = session.execute(select(Order).where(Order.order_no == SHOWCASE_UNPAID)).scalar_one_or_none()
        if waiting is not None and waiting.status == "pending_payment":
            closes_at = waiting.created_at + timedelta(minutes=unpaid.close_minutes)
            if closes_at - now > timedelta(minutes=unpaid.remind_minutes) or closes_at <= now:
                # Placed long enough ago that it closes in a little under the reminder time.
                waiting.created_at = now - timedelta(minutes=unpaid.close_minutes - unpaid.remind_minutes + 1)
                lines.append(f"订单 {waiting.order_no}：待付款，{unpaid.remind_minutes - 1} 分钟后关闭")
            else:
                waiting.status, waiting.paid_at = "paid", now
                lines.append(f"订单 {waiting.order_no}：已付款")
        tickets = (
            session.execute(
                select(AftersalesTicket)
                .where(AftersalesTicket.status.in_(("open", "approved", "in_progress")))
                .where(AftersalesTicket.customer_id.is_not(None))
                .order_by(AftersalesTicket.id)
            )
            .scalars()
            .all()
        )
        for ticket in _pick(list(tickets), showcase_ids):
            ticket.status = {"open": "approved", "approved": "in_progress", "in_progress": "closed"}[ticket.status]
            ticket.updated_at = now
            lines.append(f"工单 {ticket.ticket_no}：{ticket.status}")
    return lines
