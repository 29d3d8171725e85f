#!/usr/bin/env bash
# A three-node OpenStack Swift ring in network namespaces (198.18.0.0/24), one proxy on 127.0.0.1.
# Needs root, memcached, rsync and the Swift venv (scripts/swift-aio.sh install).
#   scripts/swift-ring.sh start [--dir D] [--devices ROOT] [--port P] [--json]
#   scripts/swift-ring.sh status|stop|replicate [--dir D] [--json]
#   scripts/swift-ring.sh kill-node N|start-node N [--dir D]
# Default state dir: .cache/swift-ring (or $SWIFT_RING_DIR). See scripts/swift_aio/ring.py.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${SWIFT_VENV:-$ROOT/.cache/swift-venv}"
case "${1:-}" in
  start|stop|status|kill-node|start-node|replicate)
    if [ ! -x "$VENV/bin/swift-proxy-server" ]; then
      echo "swift-ring: $VENV is missing; run: scripts/swift-aio.sh install" >&2
      exit 2
    fi
    exec "$VENV/bin/python" "$ROOT/scripts/swift_aio/ring.py" "$@"
    ;;
  *)
    echo "usage: $0 start|stop|status|replicate|kill-node N|start-node N [--dir DIR] [--devices ROOT] [--json]" >&2
    exit 2
    ;;
esac
