"""The notice store's SQL on PostgreSQL: consent, a campaign's one-statement
expansion (INSERT … SELECT … ON CONFLICT DO NOTHING), batch claims and
finishes. On the seeded shared test database; everything it adds is removed."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from kefu.db.engine import make_engine, session_scope, utcnow
from kefu.db.models import Campaign, Notice, NoticeAttempt, NoticeConsent, NoticeConsentChange
from kefu.notices.delivery import Deliverer
from kefu.notices.store import Audience, NoticeStore

pytestmark = pytest.mark.postgres


def test_campaign_expansion_and_batch_delivery_on_postgresql(postgres_url):
    store = NoticeStore(make_engine(postgres_url))
    try:
        for customer_id in range(1, 60):
            store.set_consent(customer_id, "marketing", True, "api")
        audience = Audience(category="手机", days=365)
        expected = store.audience_ids(audience)
        assert expected and expected <= set(range(1, 60))
        campaign = store.create_campaign(store.promotions()[0]["id"], audience, "手机节", utcnow(), staff_id=None)
        written = store.expand_campaign(campaign, [{"text": "手机节"}], utcnow())
        assert written == len(expected)
        assert store.expand_campaign(campaign, [{"text": "again"}], utcnow()) is None  # once only
        ids = store.due(campaign_id=campaign)
        outcomes = Deliverer(store, None).deliver_many(ids)
        assert {o.result for o in outcomes} == {"kept"} and len(outcomes) == len(expected)
        assert Deliverer(store, None).deliver_many(ids)[0].result == "not_claimed"
        assert store.campaign_finished(campaign)
        assert store.campaign_stats(campaign)["sent"] == len(expected)
    finally:
        with session_scope(store.engine) as session:
            session.execute(delete(NoticeAttempt))
            session.execute(delete(Notice))
            session.execute(delete(Campaign))
            session.execute(delete(NoticeConsentChange))
            session.execute(delete(NoticeConsent))
