"""The Swift store is imported without python-keystoneclient (backends/object/swift/__init__.py):
about 0.2 CPU-s of every `storagectl` command that opens a Swift repository."""

from __future__ import annotations

import subprocess
import sys


def test_swift_store_import_leaves_keystoneclient_out_but_importable() -> None:
    code = (
        "import sys, backends.object.swift.store as s, swiftclient.client as c\n"
        "assert 'keystoneclient' not in sys.modules, 'keystoneclient imported'\n"
        "assert c.ksclient_v3 is None and s.Connection is c.Connection\n"
        "import keystoneclient.v3.client\n"  # still importable by anything else
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_keystoneclient_loaded_first_is_left_alone() -> None:
    code = (
        "import sys, keystoneclient, backends.object.swift.store\n"
        "import swiftclient.client as c\n"
        "assert c.ksclient_v2 is not None\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
