"""Bearer tokens for the admin API: create, list, revoke, authenticate.

A token is ``<token id>.<secret>``; the secret is 32 random bytes (URL-safe base64) shown once
at creation. Only its SHA-256 is stored and it is compared in constant time. Roles are
ordered: ``reader`` (read only) < ``operator`` (everything but token admin and status
resets) < ``admin``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel
from sqlalchemy import select

from storage.logs import redact
from storage.catalog.api_tables import ApiToken
from storage.bounds import NAME_MAX, TOKEN_EXPIRY_DAYS_MAX, short_repr
from storage.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied

if TYPE_CHECKING:
    from storage.catalog import Catalog

ROLES = ("reader", "operator", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
_LAST_USED_RESOLUTION = timedelta(seconds=60)


class Principal(BaseModel):
    """Who is calling: the token's id, name and role."""

    token_id: str
    name: str | None
    role: str

    def has_role(self, required: str) -> bool:
        return role_allows(self.role, required)

    def require(self, required: str) -> None:
        if not self.has_role(required):
            raise PermissionDenied(
                f"this action needs role {required!r} or higher; the token has role {self.role!r}",
                required_role=required,
                role=self.role,
            )


class TokenInfo(BaseModel):
    """A token as listed: never the secret, never its hash."""

    id: str
    name: str | None
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not _expired(self.expires_at, datetime.now(UTC))


def role_allows(role: str, required: str) -> bool:
    """True when ``role`` is at least ``required`` in reader < operator < admin."""
    return _RANK.get(role, -1) >= _RANK[required]


def validate_role(role: str) -> str:
    if role not in _RANK:
        raise InvalidInput(f"role {role!r} is not accepted; accepted: {', '.join(ROLES)}", field="role")
    return role


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_bearer(bearer: str) -> tuple[str, str] | None:
    """Split ``<id>.<secret>`` into its parts, or None when it has the wrong shape."""
    token_id, sep, secret = bearer.strip().partition(".")
    if not sep or len(token_id) != 36 or not secret:
        return None
    return token_id, secret


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite drops the zone; we always store UTC
    return value


def _expired(expires_at: datetime | None, now: datetime) -> bool:
    expires_at = _aware(expires_at)
    return expires_at is not None and expires_at <= now


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        role=row.role,
        created_at=_aware(row.created_at),  # type: ignore[arg-type]
        expires_at=_aware(row.expires_at),
        revoked_at=_aware(row.revoked_at),
        last_used_at=_aware(row.last_used_at),
    )


class TokenService:
    """Tokens stored (hashed) in the catalog."""

    def __init__(self, catalog: "Catalog", *, cache_seconds: float = 0.0) -> None:
        self._catalog = catalog
        # Seconds an authenticated token is trusted without a catalog lookup (0: always look up).
        # A revocation in this process applies at once; one made by another process (another API
        # worker, `storagectl token revoke`) applies after at most this long.
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}

    def create(
        self, role: str, name: str | None = None, expires: datetime | timedelta | None = None
    ) -> tuple[TokenInfo, str]:
        """Create a token; return its info and the bearer string (shown once, never stored)."""
        validate_role(role)
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX):
            raise InvalidInput(f"token name {short_repr(name)} is not accepted; accepted: 1-{NAME_MAX} characters", field="name")
        now = datetime.now(UTC)
        if isinstance(expires, timedelta) and expires > timedelta(days=TOKEN_EXPIRY_DAYS_MAX):
            raise InvalidInput(
                f"token expiry of {expires.days} days is too far; accepted: at most {TOKEN_EXPIRY_DAYS_MAX} days",
                field="expires",
            )
        expires_at = now + expires if isinstance(expires, timedelta) else _aware(expires)
        if expires_at is not None and expires_at > now + timedelta(days=TOKEN_EXPIRY_DAYS_MAX):
            raise InvalidInput(f"token expiry is too far; accepted: at most {TOKEN_EXPIRY_DAYS_MAX} days ahead", field="expires")
        if expires_at is not None and expires_at <= now:
            raise InvalidInput("token expiry must be in the future", field="expires")
        secret = secrets.token_urlsafe(32)
        redact.remember(secret)  # never on a log line of this process
        with self._catalog.session() as session:
            row = ApiToken(name=name, role=role, secret_sha256=hash_secret(secret), created_at=now, expires_at=expires_at)
            session.add(row)
            session.flush()
            info = _info(row)
        return info, f"{info.id}.{secret}"

    def list(self, include_revoked: bool = True) -> list[TokenInfo]:
        with self._catalog.session() as session:
            rows = session.scalars(select(ApiToken).order_by(ApiToken.created_at)).all()
            infos = [_info(r) for r in rows]
        return [t for t in infos if include_revoked or t.revoked_at is None]

    def get(self, token_id: str) -> TokenInfo:
        with self._catalog.session() as session:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"token {token_id!r} does not exist; see `storagectl token list`", token=token_id)
            return _info(row)

    def revoke(self, token_id: str) -> TokenInfo:
        with self._catalog.session() as session:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"token {token_id!r} does not exist; see `storagectl token list`", token=token_id)
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            self._cache.clear()
            return _info(row)

    def cached(self, bearer: str | None) -> Principal | None:
        """The principal of a bearer string the cache still holds, else None: no catalog read, so
        the API's event loop asks this before handing ``authenticate`` to a thread."""
        parts = split_bearer(bearer or "") if self.cache_seconds > 0 else None
        if parts is None:
            return None
        redact.remember(parts[1])  # right or wrong, a presented secret is never logged
        return self._from_cache(hash_secret(bearer or ""))

    def _from_cache(self, key: str) -> Principal | None:
        entry = self._cache.get(key) if self.cache_seconds > 0 else None
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def authenticate(self, bearer: str | None) -> Principal:
        """The principal of a bearer string, or AuthenticationFailed (never says which part was wrong)."""
        parts = split_bearer(bearer or "")
        if parts is None:
            raise AuthenticationFailed("missing or malformed bearer token; expected '<token id>.<secret>'")
        token_id, secret = parts
        redact.remember(secret)  # right or wrong, a presented secret is never logged
        key = hash_secret(bearer or "")
        cached = self._from_cache(key)
        if cached is not None:
            return cached
        principal, expires_at = self._lookup(token_id, secret)
        if self.cache_seconds > 0:
            until = time.monotonic() + self.cache_seconds
            if expires_at is not None:
                until = min(until, time.monotonic() + (expires_at - datetime.now(UTC)).total_seconds())
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[key] = (until, principal)
        return principal

    def _lookup(self, token_id: str, secret: str) -> tuple[Principal, datetime | None]:
        now = datetime.now(UTC)
        with self._catalog.session() as session:
            row = session.get(ApiToken, token_id)
            stored = row.secret_sha256 if row is not None else hash_secret("")
            good = hmac.compare_digest(stored, hash_secret(secret))
            if row is None or not good or row.revoked_at is not None or _expired(row.expires_at, now):
                raise AuthenticationFailed("invalid, revoked or expired token")
            last = _aware(row.last_used_at)
            if last is None or now - last > _LAST_USED_RESOLUTION:
                row.last_used_at = now
            return Principal(token_id=row.id, name=row.name, role=row.role), _aware(row.expires_at)
