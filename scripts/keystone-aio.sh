#!/usr/bin/env bash
# A real OpenStack Keystone on 127.0.0.1 and a Swift proxy authenticating through it (tests, dev).
#   scripts/keystone-aio.sh install     # .cache/keystone-venv (PyPI keystone) + keystonemiddleware in the Swift venv
#   scripts/keystone-aio.sh start --dir D --swift-dir SWIFT_AIO_DIR [--json]
#   scripts/keystone-aio.sh stop --dir D
# See scripts/keystone_aio/aio.py.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${KEYSTONE_VENV:-$ROOT/.cache/keystone-venv}"
SWIFT_VENV="${SWIFT_VENV:-$ROOT/.cache/swift-venv}"
cmd="${1:-}"
case "$cmd" in
  install)
    if [ ! -x "$VENV/bin/keystone-manage" ]; then
      "${PYTHON:-python3}" -m venv "$VENV"
      "$VENV/bin/pip" install -q --upgrade pip
      "$VENV/bin/pip" install -q 'keystone>=26'
    fi
    if [ -x "$SWIFT_VENV/bin/python" ] && ! "$SWIFT_VENV/bin/python" -c 'import keystonemiddleware' 2>/dev/null; then
      "$SWIFT_VENV/bin/pip" install -q keystonemiddleware
    fi
    ;;
  start|stop)
    if [ ! -x "$VENV/bin/keystone-manage" ]; then
      echo "keystone-aio: $VENV is missing; run: scripts/keystone-aio.sh install" >&2
      exit 2
    fi
    shift
    exec "$VENV/bin/python" "$ROOT/scripts/keystone_aio/aio.py" "$cmd" --swift-bin "$SWIFT_VENV/bin" "$@"
    ;;
  *)
    echo "usage: $0 install|start|stop [--dir DIR] [--swift-dir DIR] [--json]" >&2
    exit 2
    ;;
esac
