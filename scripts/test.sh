#!/usr/bin/env bash
# The one test command (README, .ci/run): install what the tests need, then run them all.
# Servers (Swift, tgtd, the QEMU guest) are started by pytest fixtures on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec .venv/bin/python -m pytest "$@"
