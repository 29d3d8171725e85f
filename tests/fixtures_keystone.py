"""Pytest plugin: a real OpenStack Keystone and a Swift proxy that authenticates through it.

``keystone_swift`` starts ``scripts/keystone-aio.sh`` once per session beside the session's
Swift all-in-one (same account/container/object servers, a second proxy with ``authtoken
keystoneauth``) and yields a ``KeystoneSwift`` with the demo user's Keystone v3 credentials.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_swift import SWIFT_VENV, SwiftServer

ROOT = Path(__file__).resolve().parents[1]
AIO = ROOT / "scripts" / "keystone-aio.sh"
KEYSTONE_VENV = ROOT / ".cache" / "keystone-venv"


@dataclass
class KeystoneSwift:
    auth_url: str
    username: str
    password: str
    project_name: str
    project_id: str
    proxy_port: int

    def store_options(self) -> dict[str, Any]:
        """Options of a ``swift`` object store authenticating with Keystone v3."""
        return {"auth_url": self.auth_url, "username": self.username, "password": self.password,
                "project_name": self.project_name, "user_domain_name": "Default", "project_domain_name": "Default",
                "retries": 2, "starting_backoff": 0.2, "timeout": 20}

    def os_env(self) -> dict[str, str]:
        """The OS_* variables the swift and openstack CLIs read."""
        return {"OS_AUTH_URL": self.auth_url, "OS_USERNAME": self.username, "OS_PASSWORD": self.password,
                "OS_PROJECT_NAME": self.project_name, "OS_USER_DOMAIN_NAME": "Default",
                "OS_PROJECT_DOMAIN_NAME": "Default"}


@pytest.fixture(scope="session")
def keystone_swift(swift_server: SwiftServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeystoneSwift]:
    if not (KEYSTONE_VENV / "bin" / "keystone-manage").exists():
        pytest.skip(f"Keystone venv {KEYSTONE_VENV} missing (run scripts/keystone-aio.sh install)")
    check = subprocess.run([str(SWIFT_VENV / "bin" / "python"), "-c", "import keystonemiddleware"], capture_output=True)
    if check.returncode != 0:
        pytest.skip("keystonemiddleware missing in the Swift venv (run scripts/keystone-aio.sh install)")
    base = tmp_path_factory.mktemp("keystone-aio")
    out = subprocess.run([str(AIO), "start", "--dir", str(base), "--swift-dir", str(swift_server.dir), "--json"],
                         check=False, timeout=600, capture_output=True, text=True)
    try:
        if out.returncode != 0:
            pytest.fail(f"keystone all-in-one did not start: {out.stderr[-3000:]}")
        state = json.loads(out.stdout)
        yield KeystoneSwift(state["auth_url"], state["username"], state["password"], state["project_name"],
                            state["project_id"], int(state["swift_proxy_port"]))
    finally:
        subprocess.run([str(AIO), "stop", "--dir", str(base)], check=False, timeout=60)
