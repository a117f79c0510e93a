"""FAQ answers edited in the console reach the real bot at once: an admin
changes the shipping answer through the console's API (python -m kefu.web),
the next shipping question over the REST channel (real Rasa server, the
endpoints.yml generator) is answered with it, without retraining; a reset
brings the domain's text back. Agents get 403, a change without the CSRF
token is refused, every change is audited."""

from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import select

pytestmark = [pytest.mark.e2e, pytest.mark.model]
PASSWORD = "faq answers pass 1"
EDITED = "📦 双十二运费新规：全场包邮，下午4点前付款当天发货。"
QUESTION = "运费多少"


@pytest.fixture(scope="module")
def site(trained_model, tmp_path_factory):
    from kefu.console.store import ConsoleStore
    from kefu.db.engine import make_engine
    from kefu.shop.demo import seed
    from kefu.testing import running_servers, running_web

    url = f"sqlite:///{tmp_path_factory.mktemp('faq-e2e') / 'shop.sqlite3'}"
    engine = make_engine(url)
    seed(engine, orders=20)
    ConsoleStore(engine).add_staff("店长", "admin", PASSWORD)
    ConsoleStore(engine).add_staff("小王", "agent", PASSWORD)
    with running_servers(trained_model, url) as servers, running_web(url, servers.rasa_url) as origin:
        yield servers, origin, engine


def login(origin: str, name: str) -> tuple[requests.Session, str]:
    http = requests.Session()
    found = re.search(r'name="csrf" value="([^"]+)"', http.get(f"{origin}/console/login").text)
    assert found
    csrf = found.group(1)
    done = http.post(
        f"{origin}/console/login", data={"name": name, "password": PASSWORD, "csrf": csrf}, allow_redirects=False
    )
    assert done.status_code == 302
    return http, http.get(f"{origin}/console/api/me").json()["csrf"]


def answer(servers, sender: str) -> str:
    return "\n".join(m.get("text", "") for m in servers.say(sender, QUESTION))


def test_an_edited_faq_answer_is_the_bots_next_answer(site):
    from kefu.db.models import AuditLog
    from kefu.faq import domain_faq_answers

    servers, origin, engine = site
    default = domain_faq_answers()["shipping_policy"].text
    assert answer(servers, "faq-before") == default

    admin, csrf = login(origin, "店长")
    items = {i["key"]: i for i in admin.get(f"{origin}/console/api/faq").json()["items"]}
    assert items["shipping_policy"]["text"] == default and not items["shipping_policy"]["edited"]
    saved = admin.post(
        f"{origin}/console/api/faq", json={"key": "shipping_policy", "text": EDITED}, headers={"X-CSRF-Token": csrf}
    )
    assert saved.status_code == 200, saved.text
    # The same conversation and a new one: both get the edited text, no retraining.
    assert answer(servers, "faq-before") == EDITED
    assert answer(servers, "faq-after") == EDITED
    assert {i["key"]: i["edited"] for i in admin.get(f"{origin}/console/api/faq").json()["items"]}[
        "shipping_policy"
    ] is True

    reset = admin.post(
        f"{origin}/console/api/faq/reset", json={"key": "shipping_policy"}, headers={"X-CSRF-Token": csrf}
    )
    assert reset.status_code == 200
    assert answer(servers, "faq-reset") == default
    with engine.connect() as db:
        audit = [
            (row.action, row.outcome)
            for row in db.execute(
                select(AuditLog.action, AuditLog.outcome)
                .where(AuditLog.action.like("faq_answer_%"))
                .order_by(AuditLog.id)
            )
        ]
    assert audit == [("faq_answer_edit", "shipping_policy"), ("faq_answer_reset", "shipping_policy")]


def test_only_admins_with_the_csrf_token_change_answers(site):
    from kefu.faq import FaqAnswerStore

    servers, origin, engine = site
    change = {"key": "invoice", "text": "改过的发票说明"}
    assert requests.post(f"{origin}/console/api/faq", json=change).status_code == 401
    assert requests.get(f"{origin}/console/api/faq").status_code == 401
    agent, agent_csrf = login(origin, "小王")
    assert agent.get(f"{origin}/console/api/faq").status_code == 403
    refused = agent.post(f"{origin}/console/api/faq", json=change, headers={"X-CSRF-Token": agent_csrf})
    assert refused.status_code == 403 and refused.json()["error"] == "需要管理员权限"
    assert agent.get(f"{origin}/console/faq").status_code == 403
    admin, csrf = login(origin, "店长")
    no_token = admin.post(f"{origin}/console/api/faq", json=change)
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]
    wrong_token = admin.post(f"{origin}/console/api/faq", json=change, headers={"X-CSRF-Token": "x" + csrf})
    assert wrong_token.status_code == 403
    unknown = admin.post(
        f"{origin}/console/api/faq", json={"key": "no_such", "text": "x"}, headers={"X-CSRF-Token": csrf}
    )
    assert unknown.status_code == 404
    empty = admin.post(
        f"{origin}/console/api/faq", json={"key": "invoice", "text": "  "}, headers={"X-CSRF-Token": csrf}
    )
    assert empty.status_code == 400
    assert FaqAnswerStore(engine).text_for("invoice") is None  # nothing refused was stored
    page = admin.get(f"{origin}/console/faq")
    assert page.status_code == 200 and "常见问题答案" in page.text
