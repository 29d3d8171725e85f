"""CHAP secrets of exports: one JSON file, mode 0600, in a 0700 directory under the data dir.

Writes are atomic (temporary file created 0600, fsync, rename) and serialised by an flock,
so two processes exporting at once never lose a secret. Nothing here logs a secret.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.logs import redact
from storage.errors import DataCorruption
from storage.paths import require_private

FILE_MODE = 0o600
DIR_MODE = 0o700


class ExportSecrets:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, DIR_MODE)
        fd = os.open(self.path.parent / (self.path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> dict[str, str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        require_private(self.path, st.st_mode, "secrets file")
        try:
            data = json.loads(self.path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DataCorruption(f"secrets file {str(self.path)!r} is not valid JSON") from None
        if not isinstance(data, dict):
            raise DataCorruption(f"secrets file {str(self.path)!r} does not hold a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def _write(self, data: dict[str, str]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, json.dumps(data, indent=1, sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def get(self, key: str) -> str | None:
        with self._locked():
            secret = self._read().get(key)
        redact.remember(secret)  # never on a log line of this process
        return secret

    def put(self, key: str, secret: str) -> None:
        redact.remember(secret)
        with self._locked():
            data = self._read()
            data[key] = secret
            self._write(data)

    def delete(self, key: str) -> None:
        with self._locked():
            data = self._read()
            if data.pop(key, None) is not None:
                self._write(data)

    def keys(self) -> list[str]:
        with self._locked():
            return sorted(self._read())
