"""Validation of user-chosen names (pure functions)."""

from __future__ import annotations

import re
import uuid

from storage.bounds import LABEL_KEY_RE, NAME_MAX, parse_label_items
from storage.errors import InvalidInput

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:+@-]*$"
_NAME_RE = re.compile(NAME_PATTERN)
ACCEPTED_NAMES = (
    f"1-{NAME_MAX} characters: letters, digits and . _ - : + @, starting with a letter or digit "
    "(no '/', no '..')"
)


def validate_name(name: str, *, kind: str = "volume") -> str:
    """Return name if it is acceptable as a volume/snapshot/policy name, else raise InvalidInput."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{kind} name must not be empty; accepted: {ACCEPTED_NAMES}", field="name")
    if len(name) > NAME_MAX:
        raise InvalidInput(
            f"{kind} name is {len(name)} characters long; accepted: {ACCEPTED_NAMES}", field="name"
        )
    if ".." in name or not _NAME_RE.fullmatch(name):
        raise InvalidInput(f"{kind} name {name!r} is not accepted; accepted: {ACCEPTED_NAMES}", field="name")
    if is_uuid(name):
        raise InvalidInput(f"{kind} name {name!r} looks like an id; names must not be UUIDs", field="name")
    return name


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


LABEL_RE = LABEL_KEY_RE  # kept for importers; the label rules live in storage.bounds


def parse_labels(items: list[str] | None) -> dict[str, str]:
    """Parse ['k=v', ...] into a dict, validating keys, values and their count (storage.bounds)."""
    return parse_label_items(items)
