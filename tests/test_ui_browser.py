"""The web dashboard in a real browser: Debian's chromium, headless, driven by Playwright.

One API server (``storagectl serve``, real uvicorn, its own data dir, file pool and directory
backup repository) and one browser for the module. Every page visited is screenshotted under the
test run's output folder (``$STORAGE_TEST_ARTIFACTS``, else the module's tmp folder).
Takes ~30-60 s (starting the browser and the server, one backup with a bandwidth limit).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from tests.api_server import ApiServer, shared_api_server  # noqa: F401 - fixture

CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (the [test] extra) is not installed")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium (scripts/apt-packages.txt) is not installed")
MiB = 1024 * 1024
WAIT_MS = 30_000


DOC_SHOTS = ("overview", "job-running")  # the two docs/ui.md shows (README shows the first)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where screenshots go. With STORAGE_UI_DOC_SHOTS=<repo>/docs/img the two pictures of the docs
    are refreshed from this run at the end of the module."""
    root = os.environ.get("STORAGE_TEST_ARTIFACTS")
    folder = Path(root) / "ui-screenshots" if root else tmp_path_factory.mktemp("ui-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    target = os.environ.get("STORAGE_UI_DOC_SHOTS")
    for name in DOC_SHOTS if target else ():
        if (folder / f"{name}.png").exists():
            shutil.copy(folder / f"{name}.png", Path(target) / f"ui-{name}.png")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


def new_page(browser: object, server: ApiServer, role: str, shots: Path):
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto("/ui")
    assert page.url.endswith("/ui/login"), page.url  # not logged in: the login form
    shot(page, shots, "login")
    page.fill("#token", server.tokens[role])
    page.click("#login-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui$"))
    assert role in page.inner_text("#who")
    return page


def shot(page: object, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


def fill_volume(config: Path, name: str, data: bytes) -> None:
    """Random bytes into a file-pool volume through its backend (no loop device)."""
    with storage.open(config) as st:
        vol = st.volumes.get(name)
        with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, data, 0)
                os.fsync(fd)
            finally:
                os.close(fd)


def delete_a_pack(config: Path) -> str:
    """Lose data as a store would: delete one pack object of the default repository."""
    with storage.open(config) as st:
        repo = st.backups.open_repository()
        packs = [o.name for o in repo.location.store.list_objects(repo.container) if "/packs/" in f"/{o.name}" or o.name.startswith("packs/")]
        assert packs, [o.name for o in repo.location.store.list_objects(repo.container)]
        repo.location.store.delete_object(repo.container, packs[0])
        return packs[0]


def test_operator_creates_backs_up_and_sees_damage(browser: object, shared_api_server: ApiServer, shots: Path) -> None:
    server = shared_api_server
    page = new_page(browser, server, "operator", shots)
    shot(page, shots, "login-overview-empty")

    # create a volume through the form; a bad size first shows our typed message, not a 500
    page.click("nav >> text=Volumes")
    page.fill("#create-form input[name=name]", "web1")
    page.fill("#create-form input[name=size]", "lots")
    page.click("#create-form button[type=submit]")
    assert "is not a size; accepted:" in page.inner_text("#error")
    assert page.input_value("#create-form input[name=name]") == "web1"  # the form keeps what was typed
    page.fill("#create-form input[name=size]", "24M")
    page.fill("#create-form input[name=labels]", "tier=gold")
    page.click("#create-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/volumes/[0-9a-f-]{36}$"))
    assert "24.0M" in page.inner_text("#volume-facts") or "24M" in page.inner_text("#volume-facts")
    fill_volume(server.config, "web1", os.urandom(24 * MiB))

    # back it up at 8 MiB/s: the job page's bar moves without a reload and reaches 100 %
    page.fill("#backup-form input[name=name]", "web1-first")
    page.fill("#backup-form input[name=bandwidth_limit]", "8M")
    page.click("#backup-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/jobs/[0-9a-f-]{36}$"))
    page.evaluate("window.__same_document = true")
    seen: list[float] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen.append(float(page.get_attribute(".jobprog progress", "value") or 0))
        if 0 < seen[-1] < 100 and not any(0 < v < 100 for v in seen[:-1]):
            shot(page, shots, "job-running")  # once, on its way
        if page.get_attribute(".jobprog", "data-state") == "succeeded":
            break
        time.sleep(0.2)
    assert page.evaluate("window.__same_document") is True  # polled, never reloaded
    assert page.get_attribute(".jobprog", "data-state") == "succeeded", page.inner_text(".jobprog")
    assert float(page.get_attribute(".jobprog progress", "value") or 0) == 100.0
    assert any(0 < v < 100 for v in seen), seen  # it was seen on its way, not only at the end
    shot(page, shots, "job-progress")

    # the volume page lists the backup; a quick verify says it is sound
    page.goto("/ui/backups")
    row = page.locator("tr[data-backup]").first
    assert "web1-first" in row.inner_text() and "not verified" in row.inner_text()
    row.locator(".verify-form button").click()
    page.wait_for_selector(".jobprog[data-state=succeeded]")
    page.goto("/ui/backups")
    assert "verified" in page.locator("tr[data-backup] .verify").first.inner_text()

    # a pack object disappears from the store; the next verify flags the backup damaged
    delete_a_pack(server.config)
    page.locator("tr[data-backup] .verify-form button").first.click()
    page.wait_for_selector(".jobprog[data-state=failed]")  # a verify that finds damage fails, naming it
    assert "damaged backups" in page.inner_text("body")
    page.goto("/ui/backups")
    row = page.locator("tr[data-backup]").first
    assert "damaged" in row.inner_text() and "bad" in (row.get_attribute("class") or "")
    assert row.locator(".restore-form").count() == 0  # no restore button on a damaged backup
    shot(page, shots, "backups-damaged")
    page.goto("/ui")
    assert "web1-first" in page.inner_text("#bad-backups")  # failed and damaged come first on the overview
    shot(page, shots, "overview")

    for name, url in (("volumes", "/ui/volumes"), ("volume", "/ui/volumes/web1"), ("jobs", "/ui/jobs")):
        page.goto(url)
        shot(page, shots, name)
    page.context.close()


def test_restore_button_makes_a_new_volume(browser: object, shared_api_server: ApiServer, shots: Path) -> None:
    server = shared_api_server
    with server.client("operator") as c:
        assert c.post("/volumes", json={"name": "web2", "size": "4M"}).status_code == 201
        job = c.post("/backups", json={"volume": "web2", "name": "web2-b"}).json()
        for _ in range(300):
            if c.get(f"/jobs/{job['id']}").json()["state"] not in ("queued", "running"):
                break
            time.sleep(0.1)
    page = new_page(browser, server, "operator", shots)
    page.goto("/ui/backups?volume=web2")
    page.fill("tr[data-backup] .restore-form input[name=new_volume_name]", "web2-copy")
    page.click("tr[data-backup] .restore-form button")
    page.wait_for_selector(".jobprog[data-state=succeeded]")
    page.goto("/ui/volumes?label=")
    assert page.locator("tr[data-volume=web2-copy]").count() == 1
    page.context.close()


def test_reader_sees_no_write_buttons(browser: object, shared_api_server: ApiServer, shots: Path) -> None:
    server = shared_api_server
    with server.client("operator") as c:
        assert c.post("/volumes", json={"name": "web3", "size": "4M", "labels": {"tier": "silver"}}).status_code == 201
        assert c.post("/volumes", json={"name": "web3b", "size": "4M"}).status_code == 201
        c.post("/backups", json={"volume": "web3"})
        host = c.get("/volumes/web3").json()["host"]
    page = new_page(browser, server, "reader", shots)
    # the filters: by label, by status and label, by host
    page.goto("/ui/volumes")
    page.fill("#filters input[name=label]", "tier=silver")
    page.click("#filters button[type=submit]")
    assert page.locator("tr[data-volume]").evaluate_all("rows => rows.map(r => r.dataset.volume)") == ["web3"]
    page.select_option("#filters select[name=status]", "error")
    page.click("#filters button[type=submit]")
    assert page.locator("tr[data-volume]").count() == 0
    page.goto("/ui/volumes?host=" + host)
    assert page.locator("tr[data-volume=web3b]").count() == 1
    page.goto("/ui/volumes?host=elsewhere")
    assert page.locator("tr[data-volume]").count() == 0
    for url in ("/ui", "/ui/volumes", "/ui/volumes/web3", "/ui/backups", "/ui/policies", "/ui/jobs"):
        page.goto(url)
        forms = page.locator("main form[method=post]")
        assert forms.count() == 0, (url, [forms.nth(i).get_attribute("action") for i in range(forms.count())])
    assert page.locator("form[action='/ui/logout']").count() == 1  # logging out is the one form left
    shot(page, shots, "reader-volumes")
    page.context.close()


def test_extend_and_delete_from_the_volume_page(browser: object, shared_api_server: ApiServer, shots: Path) -> None:
    server = shared_api_server
    with server.client("operator") as c:
        assert c.post("/volumes", json={"name": "web5", "size": "4M"}).status_code == 201
        job = c.post("/backups", json={"volume": "web5", "name": "web5-b", "description": "before the upgrade"}).json()
        for _ in range(300):
            if c.get(f"/jobs/{job['id']}").json()["state"] not in ("queued", "running"):
                break
            time.sleep(0.1)
        assert c.get(f"/backups/{job['params']['backup_id']}").json()["description"] == "before the upgrade"
        vid = c.get("/volumes/web5").json()["id"]
    page = new_page(browser, server, "operator", shots)
    page.goto(f"/ui/volumes/{vid}")
    assert "before the upgrade" in page.inner_text("tr[data-backup] .description")  # the backup's description

    # extend: a smaller size is our typed message on the same page (422), then a larger one applies
    page.fill("#extend-form input[name=size]", "2M")
    page.once("dialog", lambda d: d.accept())
    with page.expect_response(lambda r: r.url.endswith("/extend")) as answer:
        page.click("#extend-form button[type=submit]")
    assert answer.value.status == 422 and "smaller than the current" in page.inner_text("#error")
    page.fill("#extend-form input[name=size]", "8M")
    page.once("dialog", lambda d: d.accept())
    page.click("#extend-form button[type=submit]")
    page.wait_for_url(re.compile(rf"/ui/volumes/{vid}$"))
    assert "8.0M" in page.inner_text("#volume-size") or "8M" in page.inner_text("#volume-size")
    shot(page, shots, "volume-extended")

    # delete: dismissing the confirm dialog sends nothing; a volume with snapshots is refused unless cascade
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#delete-form button[type=submit]")
    page.wait_for_timeout(300)
    assert asked and "cannot be undone" in asked[0] and page.url.endswith(f"/ui/volumes/{vid}")
    with storage.open(server.config) as st:
        st.snapshots.create(vid, "web5-snap")
    page.once("dialog", lambda d: d.accept())
    with page.expect_response(lambda r: r.url.endswith("/delete")) as answer:
        page.click("#delete-form button[type=submit]")
    assert answer.value.status == 409 and "snapshot" in page.inner_text("#error")
    # without its CSRF token the delete is refused too
    page.evaluate("document.querySelector('#delete-form input[name=csrf]').remove()")
    page.check("#delete-form input[name=cascade]")
    page.once("dialog", lambda d: d.accept())
    with page.expect_response(lambda r: r.url.endswith("/delete")) as answer:
        page.click("#delete-form button[type=submit]")
    assert answer.value.status == 403
    page.goto(f"/ui/volumes/{vid}")
    page.check("#delete-form input[name=cascade]")
    page.once("dialog", lambda d: d.accept())
    page.click("#delete-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/volumes$"))
    assert page.locator("tr[data-volume=web5]").count() == 0
    with storage.open(server.config) as st:
        with pytest.raises(storage.errors.NotFound):
            st.volumes.get(vid)
    page.context.close()


def test_a_form_without_its_csrf_token_is_refused(browser: object, shared_api_server: ApiServer, shots: Path) -> None:
    server = shared_api_server
    page = new_page(browser, server, "operator", shots)
    page.goto("/ui/volumes")
    page.evaluate("document.querySelector('#create-form input[name=csrf]').remove()")
    page.fill("#create-form input[name=name]", "web-csrf")
    page.fill("#create-form input[name=size]", "4M")
    with page.expect_response(lambda r: r.url.endswith("/ui/volumes") and r.request.method == "POST") as answer:
        page.click("#create-form button[type=submit]")
    assert answer.value.status == 403
    assert "CSRF token" in page.inner_text("#error")
    with storage.open(server.config) as st:
        with pytest.raises(storage.errors.NotFound):
            st.volumes.get("web-csrf")
    shot(page, shots, "csrf-refused")
    page.context.close()


def test_policies_page_shows_next_slot_runs_and_retention(browser: object, shared_api_server: ApiServer, shots: Path) -> None:
    server = shared_api_server
    with server.client("operator") as c:
        assert c.post("/volumes", json={"name": "web4", "size": "4M", "labels": {"app": "web4"}}).status_code == 201
        r = c.post("/policies", json={"name": "web4-hourly", "kind": "snapshot", "schedule": "0 * * * *",
                                      "selector": {"labels": {"app": "web4"}}, "retention": {"keep_last": 2}})
        assert r.status_code == 201, r.text
        for _ in range(3):  # three manual runs: the third prunes the oldest snapshot
            job = c.post("/policies/web4-hourly/run", json={}).json()
            for _ in range(300):
                if c.get(f"/jobs/{job['id']}").json()["state"] not in ("queued", "running"):
                    break
                time.sleep(0.1)
            time.sleep(1.1)  # distinct creation times for keep-last to order
    page = new_page(browser, server, "operator", shots)
    page.goto("/ui/policies")
    card = page.locator("section.policy[data-policy=web4-hourly]")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:00 UTC|due now", card.locator(".next-slot").inner_text())
    assert card.locator("table.runs tbody tr").count() == 3
    kept = card.locator("table.retention tr.keep")
    assert kept.count() == 2 and "last #1" in kept.first.inner_text() and "last #2" in kept.nth(1).inner_text()
    shot(page, shots, "policies")
    page.context.close()


def test_a_running_job_is_cancelled_from_its_page(browser: object, shared_api_server: ApiServer, shots: Path) -> None:
    server = shared_api_server
    with server.client("operator") as c:
        assert c.post("/volumes", json={"name": "web5", "size": "16M"}).status_code == 201
    fill_volume(server.config, "web5", os.urandom(16 * MiB))
    page = new_page(browser, server, "operator", shots)
    page.goto("/ui/volumes/web5")
    page.fill("#backup-form input[name=bandwidth_limit]", "1M")  # 16 s at most: time to press cancel
    page.click("#backup-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/jobs/[0-9a-f-]{36}$"))
    page.click(".cancel-form button")
    page.wait_for_selector(".jobprog[data-state=cancelled]", timeout=20_000)
    assert page.locator(".cancel-form").count() == 0  # nothing left to cancel
    page.context.close()
