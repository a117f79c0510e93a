"""Serve the chat page on port 8080: static files from web/, the page's
configuration, a new chat's sender id with its session token (the REST
channel accepts no other), and (only when KEFU_DEMO_LOGIN=1 on loopback) a
demo "logged-in" token.

Everything is local: no CDN, so the page works on an offline intranet.
"""
from __future__ import annotations

import argparse
import http.server
import json
import logging
import os
from pathlib import Path

from kefu.exposure import demo_login_allowed
from kefu.shop.tokens import issue_web_session, sign_customer_token

WEB_ROOT = Path(__file__).resolve().parents[1] / "web"
DEMO_CUSTOMER_ID = 1  # 王小明 in the demo shop (kefu.shop.demo.SHOWCASE_CUSTOMERS)
logger = logging.getLogger(__name__)


class ChatPageHandler(http.server.SimpleHTTPRequestHandler):
    rasa_url = "http://localhost:5005"
    demo_login = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(WEB_ROOT), **kwargs)

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path.split("?")[0] == "/config.js":
            config = {"rasaUrl": self.rasa_url, "demoLogin": self.demo_login}
            self._send(200, "application/javascript", f"window.KEFU_CONFIG = {json.dumps(config)};\n")
            return
        if self.path.startswith("/static/products/"):
            # Demo products have no photos; the generic picture stands in.
            self.path = "/static/product.svg"
        super().do_GET()

    def do_POST(self) -> None:  # noqa: N802
        if self.path == "/api/session":
            self._new_session()
            return
        if self.path != "/api/demo-token":
            self._send(404, "application/json", '{"error": "not found"}')
            return
        if not self.demo_login:
            self._send(403, "application/json", '{"error": "demo login is off"}')
            return
        token = sign_customer_token(DEMO_CUSTOMER_ID, ttl_seconds=8 * 3600)
        self._send(200, "application/json", json.dumps({"token": token}))

    def _new_session(self) -> None:
        try:
            sender, token = issue_web_session()
        except RuntimeError:
            logger.error("no KEFU_TOKEN_SECRET: chat sessions cannot be issued")
            self._send(503, "application/json", '{"error": "chat sessions are not configured"}')
            return
        self._send(200, "application/json", json.dumps({"sender": sender, "session_token": token}))

    def _send(self, code: int, content_type: str, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        logger.info("%s " + format, self.address_string(), *args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kefu.web")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--rasa-url", default="http://localhost:5005")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    demo_login = demo_login_allowed(args.host, os.environ)
    if os.environ.get("KEFU_DEMO_LOGIN") == "1" and not demo_login:
        logger.error("KEFU_DEMO_LOGIN=1 ignored: the demo login needs KEFU_TOKEN_SECRET and a page on loopback, "
                     "not %s", args.host)
    handler = type("Handler", (ChatPageHandler,), {"rasa_url": args.rasa_url, "demo_login": demo_login})
    with http.server.ThreadingHTTPServer((args.host, args.port), handler) as server:
        logger.info("chat page on http://%s:%s/ (Rasa at %s, demo login %s)", args.host, args.port,
                    args.rasa_url, "on" if demo_login else "off")
        server.serve_forever()


if __name__ == "__main__":
    main()
