"""Signed customer tokens: how a channel vouches for a logged-in customer.

Format: ``kefu1.<customer_id>.<expires_unix>.<signature>`` where the
signature is the hex HMAC-SHA256 of ``kefu1.<customer_id>.<expires_unix>``
with the secret in ``KEFU_TOKEN_SECRET``. The shop's web site signs one when
its customer opens the chat widget and the channel passes it in the message
metadata under ``customer_token``. Without a secret, tokens are refused.

The same secret signs two more things no client may choose for itself:

* a web chat's session (``kefus1.<expires_unix>.<signature of the sender
  id and expiry>`` in the metadata under ``session_token``): the REST and
  socket.io channels (kefu.channels.web) accept a sender id only with it, so
  nobody continues a conversation they were not given;
* a WeChat identity (``kefuwx1.<openid>.<expires_unix>.<signature>`` under
  ``wechat_identity``), set by the WeChat channel after WeChat's signature
  check: an openid in the metadata counts only with it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time

PREFIX = "kefu1"
METADATA_KEY = "customer_token"
SESSION_PREFIX = "kefus1"
SESSION_METADATA_KEY = "session_token"
WECHAT_PREFIX = "kefuwx1"
WECHAT_METADATA_KEY = "wechat_identity"
OPENID_METADATA_KEY = "wechat_openid"
# Keys only the server may put into a message's metadata.
SERVER_ONLY_METADATA_KEYS = (OPENID_METADATA_KEY, WECHAT_METADATA_KEY)
_OPENID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_TOKEN_CHARS = 256


def _secret(secret: str | None) -> bytes | None:
    value = secret if secret is not None else os.environ.get("KEFU_TOKEN_SECRET", "")
    return value.encode("utf-8") if value else None


def _signature(payload: str, key: bytes) -> str:
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()


def _signature_matches(payload: str, key: bytes, presented: str) -> bool:
    # compare_digest refuses non-ASCII str: compare bytes, so junk is a plain "no".
    return hmac.compare_digest(_signature(payload, key).encode("ascii"), presented.encode("utf-8", "replace"))


def _now(now: float | None) -> float:
    return now if now is not None else time.time()


def sign_customer_token(
    customer_id: int, ttl_seconds: int = 3600, *, secret: str | None = None, now: float | None = None
) -> str:
    key = _secret(secret)
    if key is None:
        raise RuntimeError("KEFU_TOKEN_SECRET is not set; customer tokens cannot be signed")
    expires = int((now if now is not None else time.time()) + ttl_seconds)
    payload = f"{PREFIX}.{int(customer_id)}.{expires}"
    return f"{payload}.{_signature(payload, key)}"


def verify_customer_token(token: object, *, secret: str | None = None, now: float | None = None) -> int | None:
    """The customer id if `token` is well-formed, correctly signed and unexpired."""
    key = _secret(secret)
    if key is None or not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS or not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != PREFIX or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    payload = ".".join(parts[:3])
    if not _signature_matches(payload, key, parts[3]):
        return None
    if int(parts[2]) < (now if now is not None else time.time()):
        return None
    return int(parts[1])


def sign_session_token(
    sender_id: str, ttl_seconds: int = 30 * 24 * 3600, *, secret: str | None = None, now: float | None = None
) -> str:
    """Vouches that `sender_id` was issued to whoever holds this token."""
    key = _secret(secret)
    if key is None:
        raise RuntimeError("KEFU_TOKEN_SECRET is not set; chat sessions cannot be signed")
    expires = int(_now(now) + ttl_seconds)
    return f"{SESSION_PREFIX}.{expires}.{_signature(f'{SESSION_PREFIX}.{sender_id}.{expires}', key)}"


def issue_web_session(*, secret: str | None = None) -> tuple[str, str]:
    """A new chat's sender id, chosen here and not by the client, and its token."""
    sender_id = "web-" + secrets.token_hex(16)
    return sender_id, sign_session_token(sender_id, secret=secret)


def verify_session_token(
    sender_id: object, token: object, *, secret: str | None = None, now: float | None = None
) -> bool:
    key = _secret(secret)
    if key is None or not isinstance(sender_id, str) or not isinstance(token, str):
        return False
    if len(token) > _MAX_TOKEN_CHARS or not token.isascii():
        return False
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != SESSION_PREFIX or not parts[1].isdigit():
        return False
    if not _signature_matches(f"{SESSION_PREFIX}.{sender_id}.{parts[1]}", key, parts[2]):
        return False
    return int(parts[1]) >= _now(now)


def sign_wechat_identity(
    openid: str, ttl_seconds: int = 600, *, secret: str | None = None, now: float | None = None
) -> str | None:
    """The WeChat channel's assertion that `openid` sent this message; None
    without a secret (then openids do not count as verification)."""
    key = _secret(secret)
    if key is None or not _OPENID.fullmatch(openid or ""):
        return None
    payload = f"{WECHAT_PREFIX}.{openid}.{int(_now(now) + ttl_seconds)}"
    return f"{payload}.{_signature(payload, key)}"


def verify_wechat_identity(token: object, *, secret: str | None = None, now: float | None = None) -> str | None:
    """The openid the WeChat channel vouched for, or None."""
    key = _secret(secret)
    if key is None or not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS or not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != WECHAT_PREFIX or not _OPENID.fullmatch(parts[1]) or not parts[2].isdigit():
        return None
    if not _signature_matches(".".join(parts[:3]), key, parts[3]):
        return None
    if int(parts[2]) < _now(now):
        return None
    return parts[1]
