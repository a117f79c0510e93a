"""The action server, with the door Rasa's own launcher leaves open closed.

`rasa run actions` listens on every interface and runs whatever tracker
anyone posts: a forged `customer_id` slot would list, cancel or re-address
that customer's orders. This launcher builds the same rasa_sdk app and

* binds to 127.0.0.1 unless told otherwise;
* requires the shared secret in KEFU_ACTION_SECRET, sent by Rasa as the
  `X-Kefu-Action-Secret` header (endpoints.yml, `action_endpoint.headers`),
  compared in constant time: always when a secret is set, and a server on
  another interface refuses to start without one; with no secret only
  loopback peers are served;
* answers an action failure with a bare error instead of rasa_sdk's echo of
  the whole request (the tracker, which Rasa then writes into its log).

Run: ``python -m kefu.action_server --actions actions --port 5055``.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os

from kefu.exposure import action_server_problem, is_loopback

SECRET_ENV = "KEFU_ACTION_SECRET"
SECRET_HEADER = "X-Kefu-Action-Secret"
# Only the liveness probe is open: it says nothing and runs nothing.
OPEN_PATHS = frozenset({"/health"})

logger = logging.getLogger(__name__)


def request_allowed(path: str, peer: str | None, presented_secret: str | None, secret: str) -> bool:
    """Whether the action server may serve this request."""
    if path in OPEN_PATHS:
        return True
    if secret:
        return hmac.compare_digest((presented_secret or "").encode("utf-8"), secret.encode("utf-8"))
    return is_loopback(peer)


def create_app(actions_package: str = "actions", secret: str | None = None):
    from rasa_sdk.endpoint import create_app as create_sdk_app
    from sanic import response

    secret = os.environ.get(SECRET_ENV, "") if secret is None else secret
    app = create_sdk_app(actions_package, cors_origins=None)

    @app.middleware("request")
    async def require_secret(request):
        if not request_allowed(request.path, request.ip, request.headers.get(SECRET_HEADER), secret):
            logger.warning(
                "action server: refused %s %s from %s (missing or wrong secret)",
                request.method,
                request.path,
                request.ip,
            )
            return response.json({"error": "forbidden"}, status=403)
        return None

    # Replaces rasa_sdk's handler, which returns the whole request body.
    @app.exception(Exception)
    async def action_failed(request, exception: Exception):
        logger.error("action server: %s failed: %s", request.path, type(exception).__name__, exc_info=exception)
        return response.json({"error": "action failed"}, status=500)

    return app


def main(argv: list[str] | None = None) -> None:
    from rasa_sdk import utils
    from rasa_sdk.plugin import plugin_manager

    parser = argparse.ArgumentParser(prog="python -m kefu.action_server")
    parser.add_argument("--actions", default="actions")
    parser.add_argument("--host", default=os.environ.get("KEFU_ACTIONS_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=5055)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret = os.environ.get(SECRET_ENV, "")
    problem = action_server_problem(args.host, secret)
    if problem:
        raise SystemExit(f"kefu.action_server: refusing to start: {problem}")
    app = create_app(args.actions, secret)
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    logger.info(
        "action server on http://%s:%s (shared secret %s)",
        args.host,
        args.port,
        "required" if secret else "not set: loopback peers only",
    )
    app.run(args.host, args.port, workers=utils.number_of_sanic_workers(), access_log=False)


if __name__ == "__main__":
    main()
