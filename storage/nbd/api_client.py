"""`storagectl backup serve --api URL`: ask a storage API host to serve a backup (POST
/backups/{id}/serve) instead of running nbdkit here; its typed error comes back typed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storage import errors
from storage.errors import BackendError, InvalidInput, StorageError

TOKEN_MAX = 512


def error_class(code: str | None, status: int) -> type[StorageError]:
    """Pure: the storage.errors class of an API error code (its HTTP status when the code is unknown)."""
    classes: list[type[StorageError]] = []
    todo: list[type[StorageError]] = [StorageError]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo.extend(cls.__subclasses__())
    for cls in classes:
        if code and cls.code == code and cls.__module__ == errors.__name__:
            return cls
    by_status = {422: InvalidInput, 404: errors.NotFound, 409: errors.Conflict, 403: errors.PermissionDenied,
                 401: errors.AuthenticationFailed, 501: errors.Unsupported}
    return by_status.get(status, BackendError)


def read_token(token_file: Path | None) -> str:
    if token_file is None:
        raise InvalidInput("serving through the API needs --token-file FILE (or STORAGE_API_TOKEN_FILE) with an operator token",
                           field="token_file")
    try:
        token = token_file.read_text()[: TOKEN_MAX + 2].strip()
    except OSError as exc:
        raise InvalidInput(f"cannot read token file {str(token_file)!r}: {exc.strerror}", field="token_file") from None
    if not token or len(token) > TOKEN_MAX:
        raise InvalidInput(f"token file {str(token_file)!r} holds no token of at most {TOKEN_MAX} characters", field="token_file")
    return token


def serve_through_api(api: str, token: str, backup_id: str, body: dict[str, Any], *, timeout: float = 120.0) -> dict[str, Any]:
    """The served-export record the API answers (uri, pid, expires_at...)."""
    import httpx

    if not api.startswith(("http://", "https://")) or len(api) > 1024:
        raise InvalidInput(f"API URL {api[:120]!r} is not accepted; accepted: http(s)://HOST:PORT of the storage API", field="api")
    url = f"{api.rstrip('/')}/backups/{backup_id}/serve"
    try:
        r = httpx.post(url, json={k: v for k, v in body.items() if v is not None}, timeout=timeout,
                       headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise BackendError(f"the storage API at {api} cannot be reached: {type(exc).__name__}") from None
    if r.status_code >= 400:
        try:
            err = r.json().get("error") or {}
            code, message = err.get("code"), str(err.get("message"))[:1000]
        except (ValueError, AttributeError):
            code, message = None, r.text[:300]
        raise error_class(code, r.status_code)(f"the storage API refused to serve backup {backup_id}: {message}")
    return r.json()
