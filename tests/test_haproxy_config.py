"""scripts/haproxy/haproxy.sh: the rendered configuration (checked by ``haproxy -c``) and its bad input."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ha_cluster import SCRIPT

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy missing (scripts/install-deps.sh installs it)")


def _render(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), "render", "--dir", str(tmp_path / "lb"), *args],
                          capture_output=True, text=True, timeout=30, check=False)


def test_rendered_config_has_the_checks_and_safe_retries(tmp_path: Path) -> None:
    out = _render(tmp_path, "--port", "18776", "--stats-port", "18777", "--server", "a=127.0.0.1:8777",
                  "--server", "b=198.18.0.12:8776")
    assert out.returncode == 0, out.stderr
    cfg = out.stdout
    for line in ("option httpchk GET /healthcheck", "retries 3", "option redispatch 1",
                 "retry-on conn-failure empty-response", "bind 127.0.0.1:18776", "bind 127.0.0.1:18777",
                 "server a 127.0.0.1:8777", "server b 198.18.0.12:8776",
                 "http-request disable-l7-retry unless retry_safe_method || has_idempotency_key",
                 f"stats socket {tmp_path / 'lb'}/haproxy.sock mode 600 level admin"):
        assert line in cfg, line
    directives = [line for line in cfg.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in directives if "@" in line]  # every placeholder filled


@pytest.mark.parametrize("args,message", [
    (["--port", "0", "--server", "a=127.0.0.1:1"], "--port must be 1-65535, got 0"),
    (["--port", "80x", "--server", "a=127.0.0.1:1"], "--port must be 1-65535, got 80x"),
    (["--port", "18776"], "give at least one --server"),
    (["--port", "18776", "--server", "bad name=127.0.0.1:1"], "server name must be 1-32"),
    (["--port", "18776", "--server", "a=example.org:80"], "server address must be IPV4:PORT, got example.org:80"),
    (["--port", "18776", "--server", "a=127.0.0.1:1", "--bind-host", "0.0.0.0;x"], "--bind-host must be an IPv4 address"),
    (["--port", "18776", "--frobnicate"], "unknown argument --frobnicate"),
])
def test_bad_input_is_refused_naming_it(tmp_path: Path, args: list[str], message: str) -> None:
    out = _render(tmp_path, *args)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not (tmp_path / "lb" / "haproxy.cfg").exists()
