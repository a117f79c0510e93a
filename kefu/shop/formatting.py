"""How shop values are shown to customers: money, China time, masked personal data."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8), name="Asia/Shanghai")

ORDER_STATUS_ZH = {
    "pending_payment": "待付款",
    "paid": "待发货",
    "shipped": "已发货",
    "delivered": "已签收",
    "completed": "已完成",
    "cancelled": "已取消",
    "refunding": "退款中",
    "refunded": "已退款",
}

TICKET_KIND_ZH = {
    "return": "退货",
    "exchange": "换货",
    "refund": "退款",
    "repair": "维修",
    "complaint": "投诉",
}

TICKET_STATUS_ZH = {
    "open": "已受理，待审核",
    "approved": "已通过",
    "rejected": "未通过",
    "in_progress": "处理中",
    "closed": "已完结",
}


def yuan(cents: int) -> str:
    """12345600 -> '¥123,456.00'."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(int(cents)), 100)
    return f"{sign}¥{whole:,}.{frac:02d}"


def china_time(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A naive-UTC (as stored) or aware datetime shown in China time."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(CHINA_TZ).strftime(fmt)


def mask_phone(phone: str) -> str:
    """13812345678 -> 138****5678; anything shorter keeps only its last four."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) >= 11:
        return f"{digits[:3]}****{digits[-4:]}"
    if len(digits) > 4:
        return "*" * (len(digits) - 4) + digits[-4:]
    return "****"


_ADDRESS_HEAD = re.compile(r"^(.+?(?:省|自治区|市))?(.+?(?:市|州|盟|地区))?(.+?(?:区|县|旗|市))?")


def mask_address(address: str) -> str:
    """北京市朝阳区建国路88号3单元 -> 北京市朝阳区***: keep the province/city/district only."""
    address = (address or "").strip()
    match = _ADDRESS_HEAD.match(address)
    head = match.group(0) if match else ""
    if not head or head == address:
        head = address[:3]
    return f"{head}***"


def mask_name(name: str) -> str:
    """张三丰 -> 张**."""
    name = (name or "").strip()
    return f"{name[:1]}{'*' * max(len(name) - 1, 1)}" if name else ""
