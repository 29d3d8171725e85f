#!/usr/bin/env bash
# Install everything the project and its tests need on a fresh Debian machine:
# Debian packages (scripts/apt-packages.txt), the project venv (.venv) and the
# dev/test Swift venv (.cache/swift-venv). Idempotent; fast when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t pkgs < <(grep -vE '^\s*(#|$)' scripts/apt-packages.txt)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
as_root() {  # root runs it directly; others through sudo when there is one
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "error: '$*' needs root; run this script as root (su -c $0) or install sudo" >&2; exit 1
  fi
}
if ((${#missing[@]})); then
  as_root apt-get -o DPkg::Lock::Timeout=300 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'

if [ -x scripts/swift-aio.sh ]; then
  scripts/swift-aio.sh install
fi
if [ -x scripts/keystone-aio.sh ]; then
  scripts/keystone-aio.sh install   # a real Keystone for the Swift Keystone v3 tests
fi
