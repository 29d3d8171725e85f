"""Pure decisions behind the Cinder listings and metadata edits (api.cinder.listing, storage.volumes.edits)."""

from __future__ import annotations

import pytest

from api.cinder.listing import LIMIT_MAX, METADATA_FILTER_MAX, listing, matches, metadata_filter, next_link, page
from api.cinder.metadata import single_meta
from storage.errors import InvalidInput, NotFound
from storage.volumes.edits import check_description, edited_labels


@pytest.mark.parametrize("raw, want", [
    (None, None),
    ("", None),
    ("  ", None),
    ('{"app": "db"}', {"app": "db"}),
    ("{'app': 'db', 'tier': 'gold'}", {"app": "db", "tier": "gold"}),  # what openstacksdk sends
    ("{}", None),
])
def test_metadata_filter_accepts(raw: str | None, want: dict | None) -> None:
    assert metadata_filter(raw) == want


@pytest.mark.parametrize("raw, message", [
    ("[1, 2]", "is not an object"),
    ("app=db", "is not an object"),
    ("{'a': 1}", "is not accepted"),  # values must be strings
    ("{'bad key': 'x'}", "is not accepted"),
    ("{[1]: 2}", "is not an object"),  # unhashable key: TypeError inside literal_eval
    ("__import__('os')", "is not an object"),  # never evaluated
    ("{" * (METADATA_FILTER_MAX + 1), f"at most {METADATA_FILTER_MAX} characters"),
    ("[" * 3000, "is not an object"),  # deep nesting within the bound
])
def test_metadata_filter_refuses(raw: str, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        metadata_filter(raw)
    assert message in err.value.message and err.value.details["field"] == "metadata"


ROW = {"id": "1", "name": "a", "status": "available", "volume_id": "v", "metadata": {"app": "db", "tier": "gold"}}


@pytest.mark.parametrize("wanted, metadata, want", [
    ({}, None, True),
    ({"name": "a", "status": None}, None, True),
    ({"name": "b"}, None, False),
    ({"status": "error"}, None, False),
    ({"volume_id": "v"}, {"app": "db"}, True),
    ({}, {"app": "db", "tier": "gold"}, True),
    ({}, {"app": "web"}, False),
    ({}, {"missing": "x"}, False),
])
def test_matches(wanted: dict, metadata: dict | None, want: bool) -> None:
    assert matches(ROW, metadata=metadata, **wanted) is want


ROWS = [{"id": str(i), "name": f"n{i}"} for i in range(5)]


@pytest.mark.parametrize("marker, limit, ids, more", [
    (None, None, ["0", "1", "2", "3", "4"], False),
    (None, 2, ["0", "1"], True),
    ("1", 2, ["2", "3"], True),
    ("2", 2, ["3", "4"], False),
    ("4", None, [], False),
    (None, 0, [], True),
    (None, 5, ["0", "1", "2", "3", "4"], False),
])
def test_page(marker: str | None, limit: int | None, ids: list[str], more: bool) -> None:
    rows, has_more = page(ROWS, marker=marker, limit=limit, what="volume")
    assert [r["id"] for r in rows] == ids and has_more is more


def test_page_refuses_an_unknown_marker() -> None:
    with pytest.raises(InvalidInput) as err:
        page(ROWS, marker="nope", limit=None, what="snapshot")
    assert "marker 'nope' is not the id of a snapshot in this listing" in err.value.message


def test_next_link_and_listing() -> None:
    assert next_link("http://h/v3/p/volumes?limit=2&marker=a&name=x", "b") == "http://h/v3/p/volumes?limit=2&name=x&marker=b"
    assert next_link("http://h/v3/volumes", "b") == "http://h/v3/volumes?marker=b"
    out = listing("volumes", ROWS, url="http://h/v3/volumes?limit=2", marker=None, limit=2, what="volume", summary=("id",))
    assert out == {"volumes": [{"id": "0"}, {"id": "1"}],
                   "volumes_links": [{"rel": "next", "href": "http://h/v3/volumes?limit=2&marker=1"}]}
    assert "volumes_links" not in listing("volumes", ROWS, url="u", marker="2", limit=2, what="volume")
    assert LIMIT_MAX >= 1000  # Cinder's default osapi_max_limit fits


@pytest.mark.parametrize("current, kwargs, want", [
    ({"a": "1"}, {"merge": {"b": "2"}}, {"a": "1", "b": "2"}),
    ({"a": "1"}, {"merge": {"a": "3"}}, {"a": "3"}),
    ({"a": "1", "b": "2"}, {"remove": ["a"]}, {"b": "2"}),
    ({"a": "1"}, {"replace": {"x": "y"}}, {"x": "y"}),
    ({"a": "1"}, {"replace": {}}, {}),
    ({"a": "1"}, {"replace": {"x": "y"}, "merge": {"z": "w"}}, {"x": "y", "z": "w"}),
    ({}, {}, {}),
])
def test_edited_labels(current: dict, kwargs: dict, want: dict) -> None:
    assert edited_labels(current, **kwargs) == want


def test_edited_labels_refuses() -> None:
    with pytest.raises(NotFound, match="label 'x' not found; labels: a"):
        edited_labels({"a": "1"}, remove=["x"])
    with pytest.raises(InvalidInput, match="at most 64 labels"):
        edited_labels({f"k{i}": "v" for i in range(64)}, merge={"one-more": "v"})
    with pytest.raises(InvalidInput, match="is not accepted"):
        edited_labels({}, merge={"bad key": "v"})


@pytest.mark.parametrize("value, want", [(None, None), ("", None), ("db of orders", "db of orders"), ("x" * 255, "x" * 255)])
def test_check_description(value: object, want: str | None) -> None:
    assert check_description(value) == want


@pytest.mark.parametrize("value", ["x" * 256, 5, ["a"]])
def test_check_description_refuses(value: object) -> None:
    with pytest.raises(InvalidInput, match="at most 255 characters"):
        check_description(value)


@pytest.mark.parametrize("payload, message", [
    ({"meta": {"a": "1", "b": "2"}}, "exactly the key in the path"),
    ({"meta": {"b": "1"}}, "exactly the key in the path"),
    ({"meta": {"a": 1}}, "values must be strings"),
    ({"metadata": {"a": "1"}}, "with a 'meta' object"),
    ({"meta": {"a": "1"}, "x": 1}, "unknown keys ['x']"),
])
def test_single_meta_refuses(payload: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        single_meta(payload, "a")
    assert message in err.value.message
    assert single_meta({"meta": {"a": "1"}}, "a") == "1"
