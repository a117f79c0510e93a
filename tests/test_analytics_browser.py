"""The analytics dashboard in headless Chromium (console sign-in, date range
changed, charts drawn; screenshot in tests/artifacts/), its CSV export and
guard, and a `kefu report` file opened offline with its charts drawn. Needs
no model: only the web server, on a demo month generated for a fixed day."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ADMIN, PASSWORD = "店长", "analytics-pass-1"
DEMO_DAY = date(2026, 11, 28)


@pytest.fixture(scope="module")
def demo_shop(tmp_path_factory):
    from kefu.analytics.demo import generate_demo_month
    from kefu.console.store import ConsoleStore
    from kefu.db.engine import ensure_schema, make_engine

    url = f"sqlite:///{tmp_path_factory.mktemp('analytics-browser') / 'shop.sqlite3'}"
    engine = make_engine(url)
    ensure_schema(engine)
    ConsoleStore(engine).add_staff(ADMIN, "admin", PASSWORD)
    generate_demo_month(engine, today=DEMO_DAY)
    return url, engine


@pytest.fixture(scope="module")
def site(demo_shop):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    from kefu.testing import running_web

    # No Rasa is needed for the dashboard: an address nobody answers. The
    # export button writes into the test's directory, not data/nlu/.
    reviewed = Path(demo_shop[0].removeprefix("sqlite:///")).parent / "reviewed.yml"
    with running_web(demo_shop[0], "http://127.0.0.1:9", extra_env={"KEFU_REVIEWED_NLU": str(reviewed)}) as origin:
        yield origin


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync", "--disable-background-networking"],
    )


def test_dashboard_draws_the_demo_month_and_follows_the_date_range(site, demo_shop):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN").new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{site}/console/analytics")  # not signed in: the login page
        page.fill("#name", ADMIN)
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(f"{site}/console/")
        page.click("#analytics-link")
        page.wait_for_selector("body[data-loaded]", timeout=20000)
        page.fill("#from", "2026-11-01")
        page.fill("#to", "2026-11-14")
        page.click("#apply")
        page.wait_for_selector('body[data-loaded="from=2026-11-01&to=2026-11-14&by=day"]', timeout=20000)
        assert "2026-11-01 至 2026-11-14" in page.inner_text("#status")
        # Every chart drawn on a canvas; the volume chart has one bar group per day.
        assert page.locator("#charts canvas").count() == 9
        days = page.evaluate(
            "echarts.getInstanceByDom(document.getElementById('chart-volume')).getOption().xAxis[0].data.length"
        )
        assert days == 14
        assert page.locator("#table-not_understood tbody tr").count() >= 5
        page.screenshot(path=str(ARTIFACTS / "analytics-dashboard.png"), full_page=True)
        # The admin's unanswered-question loop: the first group goes to an intent.
        page.wait_for_selector("#review-rows tr", timeout=20000)
        first = page.locator("#review-rows tr").first
        first.locator("select").select_option("out_of_scope")
        first.locator("button", has_text="归类").click()
        first.locator(".review-state", has_text="已归类").wait_for(timeout=10000)
        # The button of `kefu nlu export-reviewed`.
        page.click("#export-reviewed")
        page.locator("#export-state", has_text="已写出").wait_for(timeout=10000)
        page.locator("#review").screenshot(path=str(ARTIFACTS / "analytics-review.png"))
        browser.close()
    reviewed = Path(demo_shop[0].removeprefix("sqlite:///")).parent / "reviewed.yml"
    assert "- intent: out_of_scope" in reviewed.read_text(encoding="utf-8")
    assert errors == []
    from kefu.analytics.figures import Period
    from kefu.analytics.review import unanswered

    groups = unanswered(demo_shop[1], Period(date(2026, 11, 1), date(2026, 11, 14)))
    assert groups[0]["intent"] == "out_of_scope"


def _signed_in_cookie(origin: str) -> str:
    """A console session cookie, through the login form."""
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{origin}/console/login").read().decode()
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    body = urllib.parse.urlencode({"name": ADMIN, "password": PASSWORD, "csrf": csrf}).encode()
    opener.open(f"{origin}/console/login", data=body)
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def test_csv_export_and_the_guard(site):
    request = urllib.request.Request(f"{site}/console/api/analytics.csv?table=intents&from=2026-11-01&to=2026-11-27")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 401
    request.add_header("Cookie", _signed_in_cookie(site))
    with urllib.request.urlopen(request) as resp:
        text = resp.read().decode("utf-8-sig")
        assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and set(rows[0]) == {"intent", "messages"} and sum(int(r["messages"]) for r in rows) > 1000
    bad = urllib.request.Request(
        f"{site}/console/api/analytics?from=2026-11-30&to=2026-11-01", headers={"Cookie": request.get_header("Cookie")}
    )
    with pytest.raises(urllib.error.HTTPError) as wrong_range:
        urllib.request.urlopen(bad)
    assert wrong_range.value.code == 400


def test_kefu_report_opens_offline_with_its_charts(demo_shop, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report.html"
    env = {**os.environ, "DATABASE_URL": demo_shop[0]}
    done = subprocess.run(
        [sys.executable, "-m", "kefu.cli", "report", "--from", "2026-11-01", "--to", "2026-11-27", "--out", str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    assert "<script src" not in html and "http://" not in html.split("<script>", 1)[0]
    csv_dir = tmp_path / "csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kefu.cli",
            "report",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-27",
            "--format",
            "csv",
            "--out",
            str(csv_dir),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (csv_dir / "busy_hours.csv").read_text(encoding="utf-8-sig").startswith("weekday,hour,user_messages")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
        # Offline: any request leaving the file fails the test.
        requested: list[str] = []
        context.route("**/*", lambda route: (requested.append(route.request.url), route.continue_()))
        page = context.new_page()
        page.goto(out.as_uri())
        page.wait_for_selector("body[data-drawn]", timeout=20000)
        assert page.locator("#charts canvas").count() == 9
        assert [u for u in requested if not u.startswith("file:")] == []
        page.screenshot(path=str(ARTIFACTS / "analytics-report.png"), full_page=True)
        browser.close()


def test_an_admin_edits_an_faq_answer_on_its_page(site, demo_shop):
    from playwright.sync_api import sync_playwright

    from kefu.faq import FaqAnswerStore, domain_faq_answers

    edited = "🧾 发票说明（已修改）：电子发票签收后自动开具。"
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(viewport={"width": 1200, "height": 1000}, locale="zh-CN").new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{site}/console/faq")
        page.fill("#name", ADMIN)
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(f"{site}/console/")
        # Shown once the page has read the signed-in account's role (/console/api/me).
        page.locator("#faq-link").wait_for(state="visible", timeout=10000)
        page.click("#faq-link")
        page.wait_for_selector("body[data-loaded]", timeout=20000)
        assert page.locator(".faq-item").count() == len(domain_faq_answers())
        invoice = page.locator('.faq-item[data-key="invoice"]')
        assert invoice.locator("textarea").input_value() == domain_faq_answers()["invoice"].text
        invoice.locator("textarea").fill(edited)
        invoice.locator("button", has_text="保存").click()
        page.locator('.faq-item[data-key="invoice"] .faq-state', has_text="已修改").wait_for(timeout=10000)
        page.screenshot(path=str(ARTIFACTS / "faq-answers.png"), full_page=True)
        assert FaqAnswerStore(demo_shop[1]).text_for("invoice") == edited
        page.locator('.faq-item[data-key="invoice"] button', has_text="恢复默认").click()
        page.locator('.faq-item[data-key="invoice"] .faq-state', has_text="默认答案").wait_for(timeout=10000)
        browser.close()
    assert errors == []
    assert FaqAnswerStore(demo_shop[1]).text_for("invoice") is None
