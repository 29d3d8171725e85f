#!/usr/bin/env bash
# All-in-one OpenStack Swift on 127.0.0.1 for development and tests.
#   scripts/swift-aio.sh install                 # venv .cache/swift-venv with PyPI swift 2.38 + swift CLI
#   scripts/swift-aio.sh start [--dir D] [--port P] [--json]
#   scripts/swift-aio.sh status|stop|proxy-stop|proxy-start [--dir D]
# Default state dir: .cache/swift-aio (or $SWIFT_AIO_DIR). See scripts/swift_aio/aio.py.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${SWIFT_VENV:-$ROOT/.cache/swift-venv}"
cmd="${1:-}"
case "$cmd" in
  install)
    if [ -x "$VENV/bin/swift-proxy-server" ] && [ -x "$VENV/bin/swift" ]; then
      exit 0
    fi
    command -v memcached >/dev/null || echo "swift-aio: warning: memcached missing (apt install memcached)" >&2
    "${PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q 'swift==2.38.*' 'python-swiftclient>=4.4'
    ;;
  start|stop|status|proxy-stop|proxy-start)
    if [ ! -x "$VENV/bin/swift-proxy-server" ]; then
      echo "swift-aio: $VENV is missing; run: scripts/swift-aio.sh install" >&2
      exit 2
    fi
    shift
    exec "$VENV/bin/python" "$ROOT/scripts/swift_aio/aio.py" "$cmd" "$@"
    ;;
  *)
    echo "usage: $0 install|start|stop|status|proxy-stop|proxy-start [--dir DIR] [--port PORT] [--json]" >&2
    exit 2
    ;;
esac
