"""Export routes of the admin API against a real tgtd (app in-process, tokens and roles real)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import storage
from api.main import create_app
from api.routes import exports as export_routes
from tests import iscsi_tools as it
from tests.test_export_service import _cleanup, write_config

pytestmark = [pytest.mark.tgt, pytest.mark.loop]


@pytest.fixture
def api(data_dir: Path, tgtd_clean) -> Iterator[tuple[storage.Storage, dict[str, TestClient]]]:
    st = storage.open(write_config(data_dir, tgtd_clean.portal, tgtd_clean.control_port, manage=False))
    app = create_app(st)
    if not any(getattr(r, "path", "") == "/exports" for r in app.routes):
        app.include_router(export_routes.router)  # until api/main.py lists api.routes.exports
    tokens = {role: st.tokens.create(role, name=f"t-{role}")[1] for role in ("reader", "operator")}
    with TestClient(app) as base:
        clients = {
            role: TestClient(app, headers={"Authorization": f"Bearer {tok}"}) for role, tok in tokens.items()
        }
        try:
            yield st, clients
        finally:
            _cleanup(st)
            del base


def test_export_routes(api) -> None:
    st, c = api
    st.volumes.create("apivol", "8M")
    r = c["operator"].post("/volumes/apivol/export", json={"chap_secret": "Api-Secret-0042"})
    assert r.status_code == 201, r.text
    assert "Api-Secret-0042" not in r.text and r.json()["auth_method"] == "CHAP"
    assert c["reader"].post("/volumes/apivol/export", json={}).status_code == 403
    assert c["operator"].post("/volumes/apivol/export", json={}).status_code == 409

    hidden = c["reader"].get("/volumes/apivol/connection-info")
    assert hidden.status_code == 200 and hidden.json()["auth_password"] is None
    assert c["reader"].get("/volumes/apivol/connection-info", params={"show_secret": "true"}).status_code == 403
    info = c["operator"].get("/volumes/apivol/connection-info", params={"show_secret": "true"}).json()
    assert info["auth_password"] == "Api-Secret-0042"
    url = it.iscsi_url(info["target_portal"], info["target_iqn"], 1, info["auth_username"], info["auth_password"])
    assert it.total_size(url) == 8 * 1024 * 1024

    listed = c["reader"].get("/exports")
    assert [e["volume_name"] for e in listed.json()] == ["apivol"] and "Api-Secret-0042" not in listed.text
    assert c["operator"].post("/exports/reconcile").json()["unchanged"] == ["apivol"]
    bad = c["operator"].post("/volumes/apivol/export", json={"initiators": ["nope"]})
    assert bad.status_code == 422 and "not a valid iSCSI name" in bad.text
    assert c["operator"].delete("/volumes/apivol/export").status_code == 200
    assert c["reader"].get("/volumes/apivol/connection-info").status_code == 404
