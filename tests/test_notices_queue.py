"""A campaign through the real queue (dramatiq on the Redis of this machine)
and a real worker process, killed (SIGKILL) halfway and started again: the
audience, checked against a SQL query of its own, gets the campaign exactly
once each. Skipped with the reason when no Redis answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from kefu.db.engine import make_engine, utcnow
from kefu.db.models import Customer, CustomerTag, NoticeConsent, StaffAccount
from kefu.notices.store import Audience, NoticeStore
from kefu.shop.demo import seed

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CUSTOMERS = 4000

EXPECTED_SQL = """
SELECT c.id FROM customers c
JOIN notice_consents n ON n.customer_id = c.id AND n.kind = 'marketing' AND n.granted
WHERE EXISTS (SELECT 1 FROM customer_tags t WHERE t.customer_id = c.id AND t.tag = 'VIP')
"""


@pytest.fixture()
def redis_namespace():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: skip, with the reason
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    namespace = f"kefu-test-{uuid.uuid4().hex[:8]}"
    yield namespace
    for key in client.scan_iter(f"{namespace}*"):
        client.delete(key)


def start_worker(url: str, namespace: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "KEFU_QUEUE_URL": REDIS_URL,
        "KEFU_QUEUE_NAMESPACE": namespace,
        "KEFU_NOTICE_LEASE_SECONDS": "3",
        "KEFU_NOTICE_REQUEUE_SECONDS": "5",
        "KEFU_NOTICE_POLL_SECONDS": "0.5",
        "KEFU_QUIET_HOURS": "",  # the test runs at any hour
    }
    env.pop("WECHAT_APP_ID", None)
    return subprocess.Popen(
        [sys.executable, "-m", "kefu.notices.worker", "--threads", "2"],
        cwd=ROOT,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def counts(engine, campaign: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, COUNT(*) FROM notices WHERE campaign_id = :c GROUP BY status"), {"c": campaign}
        ).all()
    return {status: count for status, count in rows}


def wait(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_campaign_reaches_exactly_its_audience_once_each_across_a_killed_worker(tmp_path, redis_namespace):
    url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    engine = make_engine(url)
    seed(engine, orders=300)
    now = utcnow()
    with engine.begin() as conn:
        start = conn.execute(text("SELECT MAX(id) FROM customers")).scalar() + 1
        conn.execute(
            insert(Customer),
            [
                {"id": i, "name": f"顾客{i}", "phone": f"139{i:08d}", "created_at": now}
                for i in range(start, CUSTOMERS + 1)
            ],
        )
        conn.execute(
            insert(NoticeConsent),
            [
                {"customer_id": i, "kind": "marketing", "granted": i % 3 != 0, "channel": "web", "changed_at": now}
                for i in range(1, CUSTOMERS + 1)
            ],
        )
        staff = conn.execute(
            insert(StaffAccount).values(name="root", role="admin", password_hash="x", created_at=now)
        ).inserted_primary_key[0]
        conn.execute(
            insert(CustomerTag),
            [
                {"customer_id": i, "conversation_id": f"c{i}", "tag": "VIP", "staff_id": staff, "created_at": now}
                for i in range(2, CUSTOMERS + 1, 2)
            ],
        )
        expected = {row[0] for row in conn.execute(text(EXPECTED_SQL))}
    store = NoticeStore(engine)
    assert 1000 < len(expected) < CUSTOMERS // 2
    promotion = store.promotions()[0]["id"]
    campaign = store.create_campaign(promotion, Audience(tag="VIP"), "会员日满减", utcnow(), staff_id=staff)

    log = tmp_path / "worker.log"
    worker = start_worker(url, redis_namespace, log)
    try:
        wait(lambda: counts(engine, campaign).get("sent", 0) >= len(expected) // 5, 120, "a fifth sent")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        halfway = counts(engine, campaign)
        print(f"\nkilled with {halfway}")
        assert halfway.get("sent", 0) < len(expected), "the worker finished before it was killed: nothing tested"
        worker = start_worker(url, redis_namespace, log)
        wait(lambda: counts(engine, campaign) == {"sent": len(expected)}, 180, f"all sent ({counts(engine, campaign)})")
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(15)
    with engine.connect() as conn:
        reached = [
            row[0]
            for row in conn.execute(text("SELECT customer_id FROM notices WHERE campaign_id = :c"), {"c": campaign})
        ]
        sends = conn.execute(
            text(
                "SELECT a.notice_id, COUNT(*) FROM notice_attempts a JOIN notices n ON n.id = a.notice_id "
                "WHERE n.campaign_id = :c AND a.outcome = 'kept' GROUP BY a.notice_id"
            ),
            {"c": campaign},
        ).all()
    assert sorted(reached) == sorted(expected)  # exactly the SQL set, no one twice
    assert len(sends) == len(expected) and {count for _, count in sends} == {1}  # each sent once
    assert store.campaigns()[0]["status"] == "done"
