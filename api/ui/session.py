"""Dashboard sessions: the API token sealed in an HttpOnly cookie, and CSRF tokens bound to it.

The login form trades a token for a cookie. The cookie holds the token encrypted and
authenticated with AES-GCM under a key kept in ``<data_dir>/ui/session.key`` (0600, made on
first use), so neither page scripts (HttpOnly) nor anyone reading the cookie value learns the
token, and every API worker process of one data dir opens the same cookies. Every request
authenticates the token again (``st.tokens.authenticate``), so a revoked or expired token ends
its sessions at once. A session lives ``SESSION_SECONDS`` at most; logout clears the cookie.

CSRF: every form carries ``HMAC(key, "csrf:" + session id)``; the login form, before any
session exists, ``HMAC(key, "login:" + pre-login nonce)`` whose nonce sits in a cookie of its own.
All decisions (``seal``/``unseal``, ``csrf_for``/``csrf_ok``, ``cookie_flags``) are pure
functions of the key and their arguments.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.errors import BackendError

COOKIE = "storage_ui"
LOGIN_COOKIE = "storage_ui_login"
SESSION_SECONDS = 12 * 3600
COOKIE_MAX = 1024  # characters of a session cookie read; longer ones are refused before decoding
NONCE_MAX = 64
CSRF_FIELD = "csrf"
_AAD = b"storage-ui-session-v1"
KEY_BYTES = 32


@dataclass(frozen=True)
class Sealed:
    """What a session cookie carries once opened."""

    token: str
    issued_at: int
    session_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(key: bytes, token: str, now: int, session_id: str | None = None) -> str:
    """The cookie value for a token: nonce + AES-GCM(token, issue time, session id)."""
    payload = json.dumps({"t": token, "iat": now, "sid": session_id or secrets.token_hex(16)}).encode()
    nonce = os.urandom(12)
    return _b64(nonce + AESGCM(key).encrypt(nonce, payload, _AAD))


def unseal(key: bytes, value: str | None, now: int, max_age: int = SESSION_SECONDS) -> Sealed | None:
    """The session in a cookie value, or None when it is missing, forged, malformed or too old."""
    if not value or len(value) > COOKIE_MAX:
        return None
    try:
        raw = _unb64(value)
        payload = json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], _AAD))
    except (InvalidTag, ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    token, issued, sid = payload.get("t"), payload.get("iat"), payload.get("sid")
    if not isinstance(token, str) or not isinstance(issued, int) or not isinstance(sid, str):
        return None
    if issued > now + 60 or now - issued > max_age:  # a minute of clock skew between workers
        return None
    return Sealed(token, issued, sid)


def csrf_for(key: bytes, purpose: str, session_id: str) -> str:
    """The CSRF token of a session (purpose "csrf") or of a pre-login nonce (purpose "login")."""
    return _b64(hmac.new(key, f"{purpose}:{session_id}".encode(), hashlib.sha256).digest())


def csrf_ok(key: bytes, purpose: str, session_id: str | None, given: str | None) -> bool:
    """True when the form's token is the one of this session (constant-time)."""
    if not session_id or not given or len(given) > NONCE_MAX or len(session_id) > NONCE_MAX:
        return False
    return hmac.compare_digest(csrf_for(key, purpose, session_id), given)


def new_nonce() -> str:
    return secrets.token_hex(16)


def cookie_flags(tls: bool) -> dict[str, object]:
    """Set-Cookie attributes of both cookies: HttpOnly, SameSite=Strict, Secure over TLS, path /ui."""
    return {"httponly": True, "samesite": "strict", "secure": tls, "path": "/ui"}


def clear_cookie(response: Any, name: str, tls: bool) -> None:
    """Expire a cookie with the same attributes it was set with."""
    response.delete_cookie(name, **cookie_flags(tls))


def load_key(data_dir: Path) -> bytes:
    """The session key of this data dir, made (0600) on first use. Concurrent first uses by several
    workers agree: the key is written to a temporary file and linked into place, and the loser of
    the link reads the winner's key."""
    folder = data_dir / "ui"
    path = folder / "session.key"
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = folder / f".session.key.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, os.urandom(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise BackendError(f"{path} holds {len(key)} bytes, not a {KEY_BYTES}-byte key; delete it to make a new one")
    return key
