"""Settings that would leave a door open, refused before anything starts.

`make run` (scripts/run.sh) calls ``python -m kefu.exposure`` with its
settings in the environment; it prints why and exits 1 when:

* Rasa's HTTP API (`--enable-api`: trackers, events, the model) would listen
  on anything but loopback without RASA_AUTH_TOKEN or RASA_JWT_SECRET;
* the action server would listen on anything but loopback without
  KEFU_ACTION_SECRET (kefu.action_server refuses too);
* the chat page's demo login is asked for on anything but loopback.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def rasa_api_problem(host: str, env: Mapping[str, str]) -> str | None:
    if is_loopback(host) or env.get("RASA_AUTH_TOKEN") or env.get("RASA_JWT_SECRET"):
        return None
    return (
        f"the Rasa HTTP API would listen on {host} with no authentication: anyone could read every "
        "conversation or write into it. Set RASA_AUTH_TOKEN (or RASA_JWT_SECRET), or keep KEFU_HOST=127.0.0.1."
    )


def action_server_problem(host: str, secret: str) -> str | None:
    if secret or is_loopback(host):
        return None
    return (
        f"the action server would listen on {host} without a shared secret: anyone reaching it could act "
        "for any customer. Set KEFU_ACTION_SECRET (Rasa sends it from endpoints.yml), or bind it to 127.0.0.1."
    )


def demo_login_problem(host: str, env: Mapping[str, str]) -> str | None:
    if env.get("KEFU_DEMO_LOGIN") != "1" or is_loopback(host):
        return None
    return (
        f"KEFU_DEMO_LOGIN=1 hands anyone a logged-in demo customer; it is for the local demo only, "
        f"not for a page served on {host}. Unset it."
    )


def demo_login_allowed(host: str, env: Mapping[str, str]) -> bool:
    """The chat page's demo login: asked for, signable, and on loopback only."""
    return env.get("KEFU_DEMO_LOGIN") == "1" and bool(env.get("KEFU_TOKEN_SECRET")) and is_loopback(host)


def problems(env: Mapping[str, str]) -> list[str]:
    host = env.get("KEFU_HOST") or "127.0.0.1"
    actions_host = env.get("KEFU_ACTIONS_HOST") or "127.0.0.1"
    found = [
        rasa_api_problem(host, env),
        action_server_problem(actions_host, env.get("KEFU_ACTION_SECRET", "")),
        demo_login_problem(host, env),
    ]
    return [problem for problem in found if problem]


def main() -> int:
    found = problems(os.environ)
    for problem in found:
        print(f"refusing to start: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
