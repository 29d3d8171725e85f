"""Cinder metadata of volumes and snapshots (our labels): what ``openstack volume set --property``,
``volume unset --property``, ``volume set --no-property`` and their snapshot twins call.

``GET/POST/PUT /{volumes|snapshots}/{id}/metadata`` (read, merge, replace: ``{"metadata": {...}}``)
and ``GET/PUT/DELETE /{volumes|snapshots}/{id}/metadata/{key}`` (``{"meta": {key: value}}``). Keys
and values follow the label rules (storage.bounds.check_labels); an edit is one catalog
transaction (storage.volumes.edits).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Path, Response

from api.cinder.common import body_of, cinder_router, include_both, metadata_labels
from api.deps import StorageDep
from api.fields import IdPath
from storage.bounds import ACCEPTED_LABELS, LABEL_KEY_MAX, LABEL_KEY_RE
from storage.errors import InvalidInput, NotFound
from storage.service import Storage
from storage.volumes.edits import edit_labels

router = cinder_router()
KeyPath = Annotated[str, Path(min_length=1, max_length=LABEL_KEY_MAX, description="A metadata key")]
COLLECTIONS = {"volumes": "volume", "snapshots": "snapshot"}


def _item(st: Storage, collection: str, item_id: str) -> Any:
    return st.volumes.get(item_id) if collection == "volumes" else st.snapshots.get(item_id)


def _key(key: str) -> str:
    if not LABEL_KEY_RE.fullmatch(key):
        raise InvalidInput(f"metadata key {key!r} is not accepted; accepted: {ACCEPTED_LABELS}", field="key")
    return key


def _metadata_body(payload: Any) -> dict[str, str]:
    return metadata_labels(body_of(payload, "metadata")) or {}


def single_meta(payload: Any, key: str) -> str:
    """The value of ``{"meta": {key: value}}``; the one key must be the one in the path."""
    meta = body_of(payload, "meta")
    if list(meta) != [key]:
        raise InvalidInput(
            f"meta must hold exactly the key in the path ({key!r}); got keys {sorted(map(str, meta))[:10]}", field="meta"
        )
    return metadata_labels(meta)[key]  # type: ignore[index]


def _register(collection: str) -> None:
    kind = COLLECTIONS[collection]
    base = f"/{collection}/{{item_id}}/metadata"

    @router.get(base, name=f"{kind}_metadata")
    def show_all(item_id: IdPath, st: StorageDep) -> dict:
        return {"metadata": dict(_item(st, collection, item_id).labels)}

    @router.post(base, name=f"{kind}_metadata_merge")
    def merge(item_id: IdPath, st: StorageDep, payload: Annotated[dict, Body()]) -> dict:
        merged = edit_labels(st.catalog, kind, _item(st, collection, item_id).id, merge=_metadata_body(payload))
        return {"metadata": merged}

    @router.put(base, name=f"{kind}_metadata_replace")
    def replace(item_id: IdPath, st: StorageDep, payload: Annotated[dict, Body()]) -> dict:
        labels = edit_labels(st.catalog, kind, _item(st, collection, item_id).id, replace=_metadata_body(payload))
        return {"metadata": labels}

    @router.get(base + "/{key}", name=f"{kind}_metadata_item")
    def show_one(item_id: IdPath, key: KeyPath, st: StorageDep) -> dict:
        labels = _item(st, collection, item_id).labels
        if _key(key) not in labels:
            raise NotFound(f"metadata key {key!r} not found; keys: {', '.join(sorted(labels)) or 'none'}", key=key)
        return {"meta": {key: labels[key]}}

    @router.put(base + "/{key}", name=f"{kind}_metadata_item_set")
    def set_one(item_id: IdPath, key: KeyPath, st: StorageDep, payload: Annotated[dict, Body()]) -> dict:
        value = single_meta(payload, _key(key))
        edit_labels(st.catalog, kind, _item(st, collection, item_id).id, merge={key: value})
        return {"meta": {key: value}}

    @router.delete(base + "/{key}", name=f"{kind}_metadata_item_delete", response_class=Response)
    def delete_one(item_id: IdPath, key: KeyPath, st: StorageDep) -> Response:
        edit_labels(st.catalog, kind, _item(st, collection, item_id).id, remove=[_key(key)])
        return Response(status_code=200)


for _collection in COLLECTIONS:
    _register(_collection)


def register(app: FastAPI) -> None:
    include_both(app, router)
