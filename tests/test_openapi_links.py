"""The OpenAPI document's links (api/openapi_links.py) point at real operations with their path parameters."""

from __future__ import annotations

import re
from pathlib import Path

import storage
from api.main import create_app
from api.openapi_links import LINKS, add_links


def test_add_links_is_pure_and_skips_missing_operations() -> None:
    schema = {"paths": {
        "/volumes": {"post": {"operationId": "create", "responses": {"201": {}}}},
        "/volumes/{ref}": {"get": {"operationId": "show", "responses": {"200": {}}}},
    }}
    out = add_links(schema)
    assert "links" not in schema["paths"]["/volumes"]["post"]["responses"]["201"]  # input untouched
    assert out["paths"]["/volumes"]["post"]["responses"]["201"]["links"] == {
        "GetVolume": {"operationId": "show", "parameters": {"ref": "$response.body#/id"}}}


def test_every_link_resolves_in_the_published_document(config_file: Path) -> None:
    with storage.open(config_file) as st:
        doc = create_app(st).openapi()
    ops = {op["operationId"]: (path, method) for path, item in doc["paths"].items() for method, op in item.items()}
    count = 0
    for (path, method, status), targets in LINKS.items():
        if path.startswith("/object-stores") or path in doc["paths"]:
            links = doc["paths"][path][method]["responses"][status]["links"]
            assert set(links) == {t[0] for t in targets}, path
            for link in links.values():
                target_path, _ = ops[link["operationId"]]
                wanted = set(re.findall(r"\{(\w+)", target_path))
                assert set(link["parameters"]) <= wanted, (path, link)
                count += 1
    assert count >= 40
