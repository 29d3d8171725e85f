"""The dashboard over HTTP (app in-process, real catalog, tokens and roles): sessions, cookies, CSRF,
roles before bodies, typed errors as pages, headers. The browser tests are in test_ui_browser.py."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
import pytest

import storage
from api.main import create_app
from api.ui import session
from tests.api_server import write_config

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ERROR = re.compile(r'id="error">([^<]+)<')


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[storage.Storage, dict[str, str], object]]:
    """One app and data dir for the module (a catalog costs seconds on a shared CPU)."""
    st = storage.open(write_config(tmp_path_factory.mktemp("ui") / "data"))
    tokens = {role: st.tokens.create(role, name=f"ui-{role}")[1] for role in ("reader", "operator", "admin")}
    app = create_app(st)
    try:
        yield st, tokens, app
    finally:
        st.close()


def login(app: object, token: str, base_url: str = "http://testserver") -> TestClient:
    c = TestClient(app, base_url=base_url)  # type: ignore[arg-type]
    page = c.get("/ui/login")
    r = c.post("/ui/login", data={"csrf": CSRF.search(page.text).group(1), "token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui", r.text
    return c


def csrf_of(c: TestClient, url: str = "/ui/volumes") -> str:
    return CSRF.search(c.get(url).text).group(1)


def names(st: storage.Storage) -> set[str]:
    return {v.name for v in st.volumes.list()}


def error_of(text: str) -> str:
    import html

    return html.unescape(ERROR.search(text).group(1))


def test_without_a_session_pages_send_to_the_login_form(ui) -> None:  # type: ignore[no-untyped-def]
    _st, _tokens, app = ui
    c = TestClient(app)
    for path in ("/ui", "/ui/volumes", "/ui/jobs"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui/login", path
    assert c.get("/ui/jobs.json").status_code == 401
    r = c.post("/ui/volumes", data={"name": "x", "size": "1M"})
    assert r.status_code == 401 and "log in first" in error_of(r.text)
    assert c.get("/ui/", follow_redirects=False).headers["location"] == "/ui"
    assert c.get("/ui/static/ui.js").status_code == 200 and c.get("/ui/static/nope.js").status_code == 404


def test_login_sets_a_sealed_httponly_strict_cookie(ui) -> None:  # type: ignore[no-untyped-def]
    _st, tokens, app = ui
    c = TestClient(app)
    page = c.get("/ui/login")
    r = c.post("/ui/login", data={"csrf": CSRF.search(page.text).group(1), "token": tokens["operator"]}, follow_redirects=False)
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(session.COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie and "Secure" not in cookie
    assert tokens["operator"] not in cookie and tokens["operator"].split(".")[1] not in cookie
    assert "test-operator" not in c.get("/ui").text and "ui-operator (operator)" in c.get("/ui").text


def test_over_tls_the_cookie_is_secure(ui) -> None:  # type: ignore[no-untyped-def]
    _st, tokens, app = ui
    c = TestClient(app, base_url="https://testserver")
    page = c.get("/ui/login")
    r = c.post("/ui/login", data={"csrf": CSRF.search(page.text).group(1), "token": tokens["reader"]}, follow_redirects=False)
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(session.COOKIE + "="))
    assert "Secure" in cookie and "HttpOnly" in cookie


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [
        ("", 422, "token is required"),
        ("not-a-token", 401, ""),
        ("0b8f3c2e-1111-2222-3333-444455556666.secret", 401, ""),
        ("x" * 300, 422, "token is 300 characters long; accepted: at most 256"),
    ],
)
def test_a_bad_token_is_refused_on_the_login_form(ui, token: str, status: int, message: str) -> None:  # type: ignore[no-untyped-def]
    _st, _tokens, app = ui
    c = TestClient(app)
    page = c.get("/ui/login")
    r = c.post("/ui/login", data={"csrf": CSRF.search(page.text).group(1), "token": token}, follow_redirects=False)
    assert r.status_code == status and session.COOKIE not in r.cookies
    assert message in error_of(r.text) and (not token or token[:40] not in r.text)
    assert 'id="token"' in r.text  # the form again, with a fresh CSRF token


def test_the_login_form_needs_its_own_csrf_token(ui) -> None:  # type: ignore[no-untyped-def]
    _st, tokens, app = ui
    c = TestClient(app)
    c.get("/ui/login")
    r = c.post("/ui/login", data={"csrf": "forged", "token": tokens["admin"]}, follow_redirects=False)
    assert r.status_code == 403 and session.COOKIE not in r.cookies
    fresh = TestClient(app)  # a form from a page whose nonce cookie this browser never got
    r = fresh.post("/ui/login", data={"csrf": CSRF.search(c.get("/ui/login").text).group(1), "token": tokens["admin"]})
    assert r.status_code == 403


def test_forms_without_the_sessions_csrf_token_are_refused(ui) -> None:  # type: ignore[no-untyped-def]
    st, tokens, app = ui
    a, b = login(app, tokens["operator"]), login(app, tokens["operator"])
    for data in ({"name": "v1", "size": "1M"}, {"name": "v1", "size": "1M", "csrf": csrf_of(b)}):  # none; another session's
        r = a.post("/ui/volumes", data=data)
        assert r.status_code == 403 and "CSRF token" in error_of(r.text)
        assert "v1" not in names(st)
    r = a.post("/ui/volumes", data={"name": "v1", "size": "1M", "csrf": csrf_of(a)}, follow_redirects=False)
    assert r.status_code == 303 and st.volumes.get("v1").size_bytes == 1024 * 1024


def test_a_reader_is_refused_before_the_body_is_read(ui) -> None:  # type: ignore[no-untyped-def]
    st, tokens, app = ui
    c = login(app, tokens["reader"])
    assert "<form method=\"post\" action=\"/ui/volumes\"" not in c.get("/ui/volumes").text
    # not even a form: a reader's request is refused for its role (403), not for its body (422)
    r = c.post("/ui/volumes", content=b"\xff" * 1000, headers={"Content-Type": "application/json"})
    assert r.status_code == 403 and "needs role 'operator'" in error_of(r.text)


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"name": "bad/name", "size": "1M"}, 422, "volume name 'bad/name' is not accepted"),
        ({"name": "v", "size": "-1"}, 422, "size '-1' is not"),
        ({"name": "v", "size": "1M", "pool": "nope"}, 404, "pool 'nope'"),
        ({"name": "v", "size": "1M", "labels": "tier"}, 422, "not KEY=VALUE"),
        ({"name": "v" * 129, "size": "1M"}, 422, "name is 129 characters long; accepted: at most 128"),
        ({"name": "", "size": "1M"}, 422, "name is required"),
        ({"name": "v", "size": "999P"}, 422, "at most 8P"),
    ],
)
def test_bad_create_input_shows_the_typed_message(ui, data: dict, status: int, message: str) -> None:  # type: ignore[no-untyped-def]
    st, tokens, app = ui
    c = login(app, tokens["operator"])
    r = c.post("/ui/volumes", data={**data, "csrf": csrf_of(c)})
    assert r.status_code == status and message in error_of(r.text), r.text[:3000]
    assert 'id="create-form"' in r.text and "v" not in names(st)


def test_bad_bodies_and_queries_are_typed_errors(ui) -> None:  # type: ignore[no-untyped-def]
    st, tokens, app = ui
    c = login(app, tokens["operator"])
    token = csrf_of(c)
    r = c.post("/ui/volumes", json={"name": "v", "size": "1M", "csrf": token})
    assert r.status_code == 422 and "application/x-www-form-urlencoded" in error_of(r.text)
    r = c.post("/ui/volumes", content=b"csrf=" + token.encode() + b"&x=" + b"a" * 70_000,
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and "larger than 65536 bytes" in error_of(r.text)
    r = c.get("/ui/jobs?state=sleeping")
    assert r.status_code == 422 and "accepted: queued, running" in error_of(r.text)
    r = c.get("/ui/jobs.json", params=[("id", str(i)) for i in range(51)])
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("51 job ids given")
    assert c.get("/ui/jobs/" + "x" * 300).status_code == 422
    r = c.get("/ui/volumes/missing")
    assert r.status_code == 404 and "volume 'missing' not found" in error_of(r.text)
    st.volumes.create("v9", "1M")
    r = c.post("/ui/volumes/v9/backup", data={"csrf": token, "bandwidth_limit": "fast"})
    assert r.status_code == 422 and "bandwidth_limit" in error_of(r.text)
    r = c.post("/ui/jobs/0b8f3c2e-1111-2222-3333-444455556666/cancel", data={"csrf": token})
    assert r.status_code == 404 and "does not exist" in error_of(r.text)


def test_a_revoked_token_ends_its_sessions_and_logout_clears_the_cookie(ui) -> None:  # type: ignore[no-untyped-def]
    st, tokens, app = ui
    info, secret = st.tokens.create("operator", name="ui-revoked")
    c = login(app, secret)
    assert c.get("/ui", follow_redirects=False).status_code == 200
    st.tokens.revoke(info.id)
    r = c.get("/ui", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?ended=1"
    d = login(app, tokens["admin"])
    r = d.post("/ui/logout", data={"csrf": csrf_of(d, "/ui")}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert d.get("/ui", follow_redirects=False).status_code == 303


def test_a_tampered_cookie_is_no_session(ui) -> None:  # type: ignore[no-untyped-def]
    _st, tokens, app = ui
    c = login(app, tokens["admin"])
    value = c.cookies.get(session.COOKIE)
    c.cookies.set(session.COOKIE, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"), path="/ui")
    assert c.get("/ui", follow_redirects=False).headers["location"] == "/ui/login?ended=1"


def test_pages_carry_security_headers_and_stay_out_of_the_openapi_document(ui) -> None:  # type: ignore[no-untyped-def]
    _st, tokens, app = ui
    c = login(app, tokens["reader"])
    r = c.get("/ui")
    assert "script-src 'self'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert not [p for p in TestClient(app).get("/openapi.json").json()["paths"] if p.startswith("/ui")]
    # the JSON API keeps needing its bearer token: a dashboard cookie is not one
    assert c.get("/volumes").status_code == 401


def test_what_users_typed_is_escaped_on_every_page(ui) -> None:  # type: ignore[no-untyped-def]
    st, tokens, app = ui
    st.volumes.create("xss1", "1M", labels={"note": "<script>alert(1)</script>"})
    c = login(app, tokens["reader"])
    for url in ("/ui/volumes", "/ui/volumes/xss1", "/ui/volumes?label=note%3D%3Cb%3E"):
        text = c.get(url).text
        assert "<script>alert" not in text and "<b>" not in text, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in c.get("/ui/volumes/xss1").text
