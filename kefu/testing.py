"""Start the action server and the Rasa server on free ports, for tests,
benchmarks and the story recorder. Not used by the running bot."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# A valid UnionPay card and a valid ID number (check digits computed by
# kefu.shop.privacy), written the ways customers write them.
CARD = "6222021234567890128"
ID_NUMBER = "11010519491231002X"
FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
DISGUISED = [
    CARD.translate(FULL_WIDTH),  # full-width digits
    "\u3000".join([CARD[:4], CARD[4:8], CARD[8:12], CARD[12:16], CARD[16:]]),  # ideographic spaces
    "\xa0".join([CARD[:4], CARD[4:8], CARD[8:12], CARD[12:]]),  # non-breaking spaces
    "\u200b".join([CARD[:6], CARD[6:12], CARD[12:]]),  # zero-width spaces
    ".".join([CARD[:4], CARD[4:8], CARD[8:12], CARD[12:]]),  # dots
    f"{ID_NUMBER[:6]} {ID_NUMBER[6:14]} {ID_NUMBER[14:]}",  # the 6-8-4 ID layout
]


def sensitive_leaks(text: str) -> list[str]:
    """Pieces of CARD or ID_NUMBER that masking must hide (8 of the digits
    between the first and last four, in a row) found in `text`, however they
    were written: full-width, or split by spaces, zero-width spaces or dots.
    (A plain "no run of 13 digits" cannot be asked of stored JSON, whose
    time stamps and random ids are digits too.)"""
    digits = "".join(
        str(unicodedata.decimal(c)) if unicodedata.decimal(c, None) is not None else c
        for c in re.sub(r"[\s\u200b\u200c\u200d\u2060\ufeff.\-·]", "", text)
    )
    hidden = [number[4:-4] for number in (CARD, ID_NUMBER)]
    return [middle[i : i + 8] for middle in hidden for i in range(len(middle) - 7) if middle[i : i + 8] in digits]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def newest_model() -> Path | None:
    explicit = os.environ.get("KEFU_MODEL")
    if explicit:
        return Path(explicit) if Path(explicit).exists() else None
    models = sorted((ROOT / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


def wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}); log:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds}s; log:\n{log.read_text()[-3000:]}")


@dataclass
class Servers:
    rasa_url: str
    actions_url: str
    database_url: str
    workdir: Path
    rasa_pid: int = 0
    actions_pid: int = 0
    token_secret: str = ""
    action_secret: str = ""

    def post_json(self, path: str, payload: dict, timeout: float = 30) -> Any:
        request = urllib.request.Request(
            self.rasa_url + path,
            data=json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8") or "null")

    def get_json(self, path: str, timeout: float = 30) -> Any:
        with urllib.request.urlopen(self.rasa_url + path, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))

    def session_token(self, sender: str) -> str:
        from kefu.shop.tokens import sign_session_token

        return sign_session_token(sender, secret=self.token_secret)

    def say(self, sender: str, text: str, metadata: dict | None = None, *, signed: bool = True) -> list[dict]:
        """A message over the REST channel, with the session token the chat
        page would have been given for `sender` (unless `signed` is False)."""
        metadata = dict(metadata or {})
        if signed:
            metadata.setdefault("session_token", self.session_token(sender))
        payload: dict[str, Any] = {"sender": sender, "message": text}
        if metadata:
            payload["metadata"] = metadata
        return self.post_json("/webhooks/rest/webhook", payload)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@contextmanager
def running_servers(
    model: Path,
    database_url: str,
    *,
    extra_env: dict | None = None,
    rasa_args: tuple[str, ...] = (),
    stores: str | None = None,
) -> Iterator[Servers]:
    """Action server + `rasa run --enable-api` against `database_url`.

    `stores` is endpoints.yml text for the tracker store (and lock store)
    in place of the project's (conversations in memory)."""
    workdir = Path(tempfile.mkdtemp(prefix="kefu-servers-"))
    actions_port, rasa_port = free_port(), free_port()
    # The secrets `make run` makes per run: the one Rasa sends the action
    # server, and the one signing chat sessions and customer tokens.
    env = {
        "KEFU_TOKEN_SECRET": secrets.token_hex(16),
        **os.environ,
        "DATABASE_URL": database_url,
        "KEFU_ACTION_SECRET": secrets.token_hex(16),
        **(extra_env or {}),
    }
    # Each run's conversations in its own file (the default store is SQLite),
    # unless the caller keeps them across runs (a restart test).
    env.setdefault("KEFU_CONVERSATIONS_DB", str(workdir / "conversations.sqlite3"))
    # The project's endpoints.yml, with this run's action server port and,
    # when given, other stores.
    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8"))
    endpoints["action_endpoint"]["url"] = f"http://127.0.0.1:{actions_port}/webhook"
    if stores:
        endpoints.update(yaml.safe_load(stores))
    (workdir / "endpoints.yml").write_text(yaml.safe_dump(endpoints), encoding="utf-8")
    actions_log, rasa_log = workdir / "actions.log", workdir / "rasa.log"
    processes = []
    try:
        actions = subprocess.Popen(
            [str(BIN / "python"), "-m", "kefu.action_server", "--actions", "actions", "--port", str(actions_port)],
            cwd=ROOT,
            env=env,
            stdout=actions_log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(actions)
        rasa = subprocess.Popen(
            [
                str(BIN / "rasa"),
                "run",
                "--enable-api",
                "--model",
                str(model),
                "--port",
                str(rasa_port),
                "--interface",
                "127.0.0.1",
                "--credentials",
                str(ROOT / "credentials.yml"),
                "--endpoints",
                str(workdir / "endpoints.yml"),
                *rasa_args,
            ],
            cwd=ROOT,
            env=env,
            stdout=rasa_log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(rasa)
        wait_for(f"http://127.0.0.1:{actions_port}/health", actions, actions_log)
        wait_for(f"http://127.0.0.1:{rasa_port}/", rasa, rasa_log)
        yield Servers(
            f"http://127.0.0.1:{rasa_port}",
            f"http://127.0.0.1:{actions_port}",
            database_url,
            workdir,
            rasa_pid=rasa.pid,
            actions_pid=actions.pid,
            token_secret=env["KEFU_TOKEN_SECRET"],
            action_secret=env["KEFU_ACTION_SECRET"],
        )
    finally:
        for process in processes:
            _stop(process)


@contextmanager
def running_web(
    database_url: str, rasa_url: str, *, extra_env: dict | None = None, log: Path | None = None, port: int | None = None
) -> Iterator[str]:
    """`python -m kefu.web` (chat page and agent console) on `port` (default: a free one); its origin."""
    port = port or free_port()
    log = log or Path(tempfile.mkdtemp(prefix="kefu-web-")) / "web.log"
    env = {**os.environ, "DATABASE_URL": database_url, **(extra_env or {})}
    web = subprocess.Popen(
        [sys.executable, "-m", "kefu.web", "--port", str(port), "--rasa-url", rasa_url],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    origin = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{origin}/", web, log, seconds=60)
        yield origin
    finally:
        _stop(web)


def wait_until(check: Any, seconds: float = 10.0, every: float = 0.2) -> Any:
    """`check()` once it is truthy, or its last value after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    return check()


class JsonHandler(BaseHTTPRequestHandler):
    """Request handler of the tests' stand-ins for other services: silent, answers JSON."""

    def log_message(self, *args: Any) -> None:
        pass

    def reply_json(self, payload: Any, status: int = 200) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeWeChatAPI:
    """A recording stand-in for api.weixin.qq.com/cgi-bin/ on a loopback port
    (point WECHAT_API_BASE_URL or the channel's `api_base_url` at `base_url`):
    issues access tokens (`token`) and records customer-service messages
    (`message/custom/send`), refusing a token it did not issue, as WeChat
    does (errcode 40001)."""

    def __init__(self) -> None:
        import threading
        from http.server import ThreadingHTTPServer
        from urllib.parse import parse_qs, urlparse

        self.tokens_issued: list[str] = []
        self.sent: list[dict] = []  # the JSON bodies of accepted messages
        self.refused: list[dict] = []
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                query = parse_qs(url.query)
                if url.path == "/cgi-bin/token" and query.get("grant_type") == ["client_credential"]:
                    token = f"fake-token-{len(fake.tokens_issued) + 1}"
                    fake.tokens_issued.append(token)
                    return self.reply_json({"access_token": token, "expires_in": 7200})
                self.reply_json({"errcode": 40013, "errmsg": "invalid appid"})

            def do_POST(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                token = parse_qs(url.query).get("access_token", [""])[0]
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if url.path != "/cgi-bin/message/custom/send":
                    return self.reply_json({"errcode": 40001, "errmsg": "unknown api"})
                if token not in fake.tokens_issued:
                    fake.refused.append(body)
                    return self.reply_json({"errcode": 40001, "errmsg": "invalid credential"})
                fake.sent.append(body)
                self.reply_json({"errcode": 0, "errmsg": "ok"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts_to(self, openid: str) -> list[str]:
        return [m["text"]["content"] for m in self.sent if m.get("touser") == openid and m.get("msgtype") == "text"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
