"""Signed customer tokens: how a channel vouches for a logged-in customer.

Format: ``kefu1.<customer_id>.<expires_unix>.<signature>`` where the
signature is the hex HMAC-SHA256 of ``kefu1.<customer_id>.<expires_unix>``
with the secret in ``KEFU_TOKEN_SECRET``. The shop's web site signs one when
its customer opens the chat widget and the channel passes it in the message
metadata under ``customer_token``. Without a secret, tokens are refused.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import time

PREFIX = "kefu1"
METADATA_KEY = "customer_token"


def _secret(secret: str | None) -> bytes | None:
    value = secret if secret is not None else os.environ.get("KEFU_TOKEN_SECRET", "")
    return value.encode("utf-8") if value else None


def _signature(payload: str, key: bytes) -> str:
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_customer_token(customer_id: int, ttl_seconds: int = 3600, *, secret: str | None = None,
                        now: float | None = None) -> str:
    key = _secret(secret)
    if key is None:
        raise RuntimeError("KEFU_TOKEN_SECRET is not set; customer tokens cannot be signed")
    expires = int((now if now is not None else time.time()) + ttl_seconds)
    payload = f"{PREFIX}.{int(customer_id)}.{expires}"
    return f"{payload}.{_signature(payload, key)}"


def verify_customer_token(token: object, *, secret: str | None = None, now: float | None = None) -> int | None:
    """The customer id if `token` is well-formed, correctly signed and unexpired."""
    key = _secret(secret)
    if key is None or not isinstance(token, str) or len(token) > 256:
        return None
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != PREFIX or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(_signature(payload, key), parts[3]):
        return None
    if int(parts[2]) < (now if now is not None else time.time()):
        return None
    return int(parts[1])
