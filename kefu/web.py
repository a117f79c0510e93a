"""Serve the chat page (web/) on port 8080. Placeholder until the channels issue lands."""
from __future__ import annotations

import argparse
import functools
import http.server
from pathlib import Path

WEB_ROOT = Path(__file__).resolve().parents[1] / "web"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kefu.web")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--rasa-url", default="http://localhost:5005")
    args = parser.parse_args(argv)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(WEB_ROOT))
    with http.server.ThreadingHTTPServer((args.host, args.port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
