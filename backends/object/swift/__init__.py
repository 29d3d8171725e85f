"""The Swift object store (store.py).

python-swiftclient imports python-keystoneclient at import time (about 0.45 CPU-s, a third of a
`storagectl backup create` into Swift before any data moves) for Keystone auth *without* a
session, which this store never uses: it authenticates with tempauth (v1) or with Keystone v3
through a keystoneauth1 session (imported when such a store is opened). So swiftclient is
imported here first with keystoneclient hidden, unless either is already loaded; keystoneclient
itself stays importable for anything else in the process.
"""

import sys

if "swiftclient.client" not in sys.modules and "keystoneclient" not in sys.modules:
    sys.modules["keystoneclient"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import swiftclient.client  # noqa: F401
    finally:
        del sys.modules["keystoneclient"]
