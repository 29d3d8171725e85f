#!/usr/bin/env bash
# Set up storage on embedded defaults and run the admin API on 127.0.0.1:8776.
# Installs the project venv (.venv) with `storagectl`, creates a first admin token on the
# first start (saved 0600 in the data dir, printed once), then serves until Ctrl-C.
# Data dir: /var/lib/storage as root, ~/.local/share/storage otherwise (STORAGE_DATA_DIR overrides).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in losetup blockdev lsblk; do command -v "$tool" >/dev/null || need+=(util-linux); done
as_root() {  # root runs it directly; others through sudo when there is one
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "error: '$*' needs root; run this script as root (su -c $0) or install sudo" >&2; exit 1
  fi
}
if ((${#need[@]})); then
  as_root apt-get -o DPkg::Lock::Timeout=300 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq util-linux
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e .

data_dir=$(.venv/bin/python -c 'import storage; print(storage.load_settings().data_dir)')
mkdir -p "$data_dir" && chmod 700 "$data_dir"  # catalog, keys and the admin token live here
token_file="$data_dir/admin-token"
if [ ! -s "$token_file" ]; then
  umask 077
  .venv/bin/storagectl token create --role admin --name bootstrap --json \
    | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["secret"])' > "$token_file"
  echo "First admin token saved in $token_file (mode 0600)."
fi
cat <<TXT
storagectl is ready: $(pwd)/.venv/bin/storagectl   (add .venv/bin to PATH)
Try:  storagectl volume create vol1 1G && storagectl volume attach vol1 && storagectl pools
API:  curl -H "Authorization: Bearer \$(cat $token_file)" http://127.0.0.1:8776/volumes
Web:  http://127.0.0.1:8776/ui   (log in with the token in $token_file)
TXT
exec .venv/bin/storagectl serve "$@"
