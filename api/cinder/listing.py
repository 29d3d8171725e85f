"""Cinder listings: filters (``name``, ``status``, ``volume_id``, ``metadata``), marker/limit pages
and the ``<collection>_links`` next link, as pure functions over the listing's view dicts.

What openstacksdk (``openstack volume list --name/--status/--property/--limit/--marker``,
``volume snapshot list --name/--status/--volume``, ``volume backup list ...``) sends.
``metadata`` is Cinder's filter form: a JSON object or the Python dict repr the SDK sends
(``{'app': 'db'}``), bounded before it is parsed.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from storage.bounds import ACCEPTED_LABELS, check_labels
from storage.errors import InvalidInput

METADATA_FILTER_MAX = 4096  # characters of the metadata filter text
LIMIT_MAX = 10_000  # rows in one page


def metadata_filter(raw: str | None) -> dict[str, str] | None:
    """The ``metadata`` query filter as a dict of labels; None when absent or empty."""
    if raw is None or not raw.strip():
        return None
    accepted = f"accepted: a JSON object of strings such as {{\"app\": \"db\"}} (at most {METADATA_FILTER_MAX} characters), {ACCEPTED_LABELS}"
    if len(raw) > METADATA_FILTER_MAX:
        raise InvalidInput(f"metadata filter is {len(raw)} characters; {accepted}", field="metadata")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        try:  # what openstacksdk sends: str() of a dict
            value = ast.literal_eval(raw)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise InvalidInput(f"metadata filter {raw[:100]!r} is not an object; {accepted}", field="metadata") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"metadata filter {raw[:100]!r} is not an object; {accepted}", field="metadata")
    return check_labels(value, field="metadata") or None


def matches(row: Mapping[str, Any], *, metadata: Mapping[str, str] | None = None, **wanted: str | None) -> bool:
    """Whether a view row has every wanted field value (None: no filter) and every metadata pair."""
    if any(value is not None and row.get(key) != value for key, value in wanted.items()):
        return False
    have = row.get("metadata") or {}
    return all(have.get(k) == v for k, v in (metadata or {}).items())


def page(rows: Sequence[dict[str, Any]], *, marker: str | None, limit: int | None, what: str) -> tuple[list[dict[str, Any]], bool]:
    """The rows after ``marker`` (an id in ``rows``), at most ``limit`` of them, and whether more remain.

    An unknown marker is refused (Cinder: "marker not found"), naming it and what is accepted."""
    start = 0
    if marker:
        ids = [row["id"] for row in rows]
        if marker not in ids:
            raise InvalidInput(
                f"marker {marker[:100]!r} is not the id of a {what} in this listing; accepted: the id of the last "
                f"{what} of the previous page", field="marker",
            )
        start = ids.index(marker) + 1
    rest = list(rows[start:])
    if limit is None:
        return rest, False
    return rest[:limit], len(rest) > limit


def next_link(url: str, last_id: str) -> str:
    """``url`` with ``marker`` set to ``last_id`` (every other query parameter kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "marker"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("marker", last_id)])))


def listing(collection: str, rows: Sequence[dict[str, Any]], *, url: str, marker: str | None, limit: int | None,
            what: str, summary: Sequence[str] | None = None) -> dict[str, Any]:
    """``{collection: [...]}`` of one page (``summary``: the keys of a non-detailed listing), with
    ``{collection}_links`` holding the next page's link when the limit cut the listing."""
    rows_page, more = page(rows, marker=marker, limit=limit, what=what)
    out: dict[str, Any] = {collection: [{k: r[k] for k in summary} for r in rows_page] if summary else rows_page}
    if more and rows_page:
        out[f"{collection}_links"] = [{"rel": "next", "href": next_link(url, rows_page[-1]["id"])}]
    return out
