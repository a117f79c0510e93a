"""Endpoint safety of the real Rasa server as production runs it: the HTTP
API needs the token, CORS allows only configured origins, and oversized
bodies are refused with 413 before anything is stored."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.model]
TOKEN = "production-api-token"
ALLOWED = "https://shop.example.com"
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def server(trained_model, tmp_path_factory):
    from kefu.db.engine import make_engine
    from kefu.shop.demo import seed
    from kefu.testing import running_servers

    url = f"sqlite:///{tmp_path_factory.mktemp('safety') / 'shop.sqlite3'}"
    seed(make_engine(url), orders=50)
    with running_servers(
        trained_model,
        url,
        extra_env={"SANIC_REQUEST_MAX_SIZE": str(MAX_BODY)},
        rasa_args=("--auth-token", TOKEN, "--cors", ALLOWED),
    ) as servers:
        yield servers


def call(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as res:
            return res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_http_api_requires_the_token(server):
    body = json.dumps({"text": "你好"}).encode()
    assert call(f"{server.rasa_url}/model/parse", "POST", body)[0] == 401
    assert call(f"{server.rasa_url}/model/parse?token=wrong", "POST", body)[0] == 401
    assert call(f"{server.rasa_url}/model/parse?token={TOKEN}", "POST", body)[0] == 200
    assert call(f"{server.rasa_url}/conversations/anyone/tracker")[0] == 401


def test_cors_allows_only_the_configured_origin(server):
    preflight = {"Access-Control-Request-Method": "POST"}
    _, allowed, _ = call(
        f"{server.rasa_url}/webhooks/rest/webhook", "OPTIONS", headers={**preflight, "Origin": ALLOWED}
    )
    _, denied, _ = call(
        f"{server.rasa_url}/webhooks/rest/webhook",
        "OPTIONS",
        headers={**preflight, "Origin": "https://evil.example.net"},
    )
    assert allowed.get("Access-Control-Allow-Origin") == ALLOWED
    assert "Access-Control-Allow-Origin" not in denied


def test_oversized_bodies_get_413_and_nothing_is_stored(server):
    sender = "too-big-sender"
    body = json.dumps({"sender": sender, "message": "啊" * MAX_BODY}).encode()
    assert call(f"{server.rasa_url}/webhooks/rest/webhook", "POST", body)[0] == 413
    status, _, raw = call(f"{server.rasa_url}/conversations/{sender}/tracker?token={TOKEN}")
    assert status == 200
    events = json.loads(raw)["events"]
    assert not [e for e in events if e.get("event") == "user"]
    small = json.dumps(
        {"sender": sender, "message": "你好", "metadata": {"session_token": server.session_token(sender)}}
    ).encode()
    assert call(f"{server.rasa_url}/webhooks/rest/webhook", "POST", small)[0] == 200
