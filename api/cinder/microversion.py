"""Cinder microversions: ``OpenStack-API-Version: volume 3.N`` in, the same header out."""

from __future__ import annotations

import re

from fastapi import HTTPException, Request, Response

MIN_VERSION = (3, 0)
MAX_VERSION = (3, 70)
HEADER = "OpenStack-API-Version"
_VERSION_RE = re.compile(r"^\s*volume\s+(\d+)\.(\d+|latest)\s*$", re.IGNORECASE)


def fmt(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def parse_version_header(value: str | None) -> tuple[int, int]:
    """The requested microversion; no header means 3.0, ``latest`` the maximum.

    Raises ValueError (malformed) or LookupError (outside MIN..MAX) with a message saying what is accepted.
    """
    if not value:
        return MIN_VERSION
    for part in value.split(","):
        if part.strip().lower().startswith("volume"):
            m = _VERSION_RE.match(part)
            if not m:
                raise ValueError(f"{HEADER} {value!r} is malformed; accepted: 'volume 3.N' with N in 0..{MAX_VERSION[1]}, or 'volume latest'")
            if m.group(2) == "latest":
                return MAX_VERSION
            version = (int(m.group(1)), int(m.group(2)))
            if not MIN_VERSION <= version <= MAX_VERSION:
                raise LookupError(
                    f"Version {fmt(version)} is not supported by the API. Minimum is {fmt(MIN_VERSION)} and maximum is {fmt(MAX_VERSION)}."
                )
            return version
    return MIN_VERSION


def microversion(request: Request, response: Response) -> tuple[int, int]:
    """Dependency: validate the requested version and echo it on the response."""
    try:
        version = parse_version_header(request.headers.get(HEADER))
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(406, str(exc)) from None
    request.state.microversion = version
    response.headers[HEADER] = f"volume {fmt(version)}"
    response.headers["Vary"] = HEADER
    return version
