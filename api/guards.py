"""What the HTTP API refuses that the local CLI allows (pure functions).

Over the network an operator token must not become root file access: backup sources are
volumes and snapshots only (no host paths), restores go to volumes only (no host paths), and
``file://`` repositories must lie under the data dir (``swift://`` and ``s3://`` go to
configured stores).
"""

from __future__ import annotations

import os

from storage.config import Settings
from storage.errors import InvalidInput


def check_repository(url: str | None, settings: Settings) -> str | None:
    if url is None:
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("swift", "s3"):
        return url
    if scheme == "file":
        path = os.path.normpath(url.split("://", 1)[1])
        root = os.path.normpath(str(settings.data_dir))
        if path == root or path.startswith(root + os.sep):
            return url
    raise InvalidInput(
        f"repository {url!r} is not accepted over the API; accepted: swift://[STORE@]container[/prefix], "
        f"s3://[STORE@]bucket[/prefix], or file:// under the data dir {settings.data_dir}",
        field="repository",
    )
