"""PostgreSQL as the catalog, the way an operator points at it: ``STORAGE_CATALOG__URL`` in the
environment of ``storagectl`` and ``storagectl serve`` (no config file), plus what only PostgreSQL
can get wrong: the server's time zone, an unreachable server, two processes sharing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import httpx
import pytest

import storage
from storage.errors import BackendError
from tests.api_server import ApiServer, free_port
from tests.fixtures_postgres import PostgresServer

STORAGECTL = str(Path(sys.executable).parent / "storagectl")


@pytest.fixture
def pg_env(pg_database: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    env.update(STORAGE_DATA_DIR=str(data_dir), STORAGE_CATALOG__URL=pg_database)
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STORAGECTL, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def served(pg_env: dict[str, str], data_dir: Path) -> Iterator[ApiServer]:
    token = json.loads(_cli(pg_env, "token", "create", "--role", "operator", "--json").stdout)["secret"]
    port = free_port()
    log = data_dir / "serve.log"
    proc = subprocess.Popen(
        [STORAGECTL, "serve", "--port", str(port), "--log-level", "warning"],
        env=pg_env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    server = ApiServer(config=data_dir / "unused.toml", port=port, log=log, proc=proc, tokens={"operator": token})
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise AssertionError(f"serve exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(f"serve did not answer /healthz in 30 s: {log.read_text()[-2000:]}")
        yield server
    finally:
        server.stop()


def test_cli_and_api_share_a_postgres_catalog_named_by_the_environment(
    served: ApiServer, pg_env: dict[str, str], pg_database: str
) -> None:
    with served.client("operator") as c:
        r = c.post("/volumes", json={"name": "pg-vol", "size": "4M", "labels": {"db": "pg"}})
        assert r.status_code == 201, r.text
        assert [v["name"] for v in c.get("/volumes").json()] == ["pg-vol"]
        listed = _cli(pg_env, "volume", "list", "--json")  # another process, same catalog
        assert listed.returncode == 0, listed.stderr
        assert [v["name"] for v in json.loads(listed.stdout)] == ["pg-vol"]
        created = _cli(pg_env, "volume", "create", "cli-vol", "2M")
        assert created.returncode == 0, created.stderr
        assert sorted(v["name"] for v in c.get("/volumes").json()) == ["cli-vol", "pg-vol"]  # listing cache saw it
        assert c.delete("/volumes/pg-vol").status_code == 204
        assert c.delete("/volumes/cli-vol").status_code == 204
        assert c.get("/volumes").json() == []
    with storage.open(None, data_dir=pg_env["STORAGE_DATA_DIR"], catalog={"url": pg_database}) as st:
        assert st.catalog.engine.dialect.name == "postgresql" and st.volumes.list() == []


def test_timestamps_are_utc_whatever_the_servers_time_zone(
    postgres_server: PostgresServer, pg_database: str, data_dir: Path
) -> None:
    name = pg_database.rsplit("/", 1)[1]
    postgres_server._admin(f"ALTER DATABASE {name} SET timezone = 'Asia/Kolkata'")  # +05:30
    with storage.open(None, data_dir=str(data_dir), catalog={"url": pg_database}) as st:
        vol = st.volumes.create("tz", "1M")
        again = st.volumes.get("tz")
        assert again.created_at.utcoffset() == timedelta(0) and again.created_at.tzinfo == UTC
        assert again.created_at == vol.created_at
        with st.catalog.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW timezone").scalar() == "UTC"


def test_an_unreachable_catalog_is_a_clear_error_without_the_password(data_dir: Path) -> None:
    url = f"postgresql+psycopg://storage:Sekr1t-pw@127.0.0.1:{free_port()}/catalog"
    with pytest.raises(BackendError, match=r"catalog database postgresql\+psycopg://storage:\*\*\*@127.0.0.1") as err:
        storage.open(None, data_dir=str(data_dir), catalog={"url": url})
    assert "Sekr1t" not in str(err.value) and "refused" in str(err.value)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    out = _cli({**env, "STORAGE_DATA_DIR": str(data_dir), "STORAGE_CATALOG__URL": url}, "volume", "list")
    assert out.returncode == BackendError.exit_code and "Traceback" not in out.stderr
    assert "Sekr1t" not in out.stdout + out.stderr and "catalog database" in out.stderr
