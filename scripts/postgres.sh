#!/usr/bin/env bash
# A private PostgreSQL cluster on 127.0.0.1 for development and tests (Debian's `postgresql`).
#   scripts/postgres.sh start  [--dir D] [--port P] [--fast] [--json]   # initdb on first start
#   scripts/postgres.sh stop   [--dir D] [--purge]                      # --purge deletes D
#   scripts/postgres.sh status [--dir D]
#   scripts/postgres.sh url    [--dir D] [--db NAME]   # postgresql+psycopg://postgres@127.0.0.1:P/NAME
# Default state dir: .cache/postgres (or $PG_DIR). The cluster listens on 127.0.0.1 only, has its
# own unix socket dir (D/sock) and trusts local connections: a test bed, not a production server
# (docs/catalog.md). initdb refuses root, so as root the cluster runs as the `postgres` user.
# --fast turns fsync off (tests: the data is thrown away).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cmd="${1:-}"
[ $# -gt 0 ] && shift
dir="${PG_DIR:-$ROOT/.cache/postgres}"
port=""
fast=0
json=0
purge=0
db="postgres"
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --db) db="$2"; shift 2 ;;
    --fast) fast=1; shift ;;
    --json) json=1; shift ;;
    --purge) purge=1; shift ;;
    *) echo "postgres.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$port" in ''|[0-9]|[0-9][0-9]|[0-9][0-9][0-9]|[0-9][0-9][0-9][0-9]|[0-9][0-9][0-9][0-9][0-9]) ;;
  *) echo "postgres.sh: --port must be a number 1-65535, got $port" >&2; exit 2 ;;
esac
case "$db" in *[!A-Za-z0-9_]*|'') echo "postgres.sh: --db must be letters, digits or _, got $db" >&2; exit 2 ;; esac

PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
  echo "postgres.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  exit 2
fi
data="$dir/data"
sock="$dir/sock"

as_owner() {  # run a server command as the cluster's owner
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

running() { [ -f "$data/postmaster.pid" ] && as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; }

url() { echo "postgresql+psycopg://postgres@127.0.0.1:$(cat "$dir/port")/$1"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres: "$dir"
      chmod 0700 "$dir"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
      as_owner mkdir -p "$data" "$sock"
      as_owner "$PG_BIN/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if ! running; then
      [ -n "$port" ] || port="$(free_port)"
      echo "$port" | as_owner tee "$dir/port" >/dev/null
      opts="-p $port -k $sock -c listen_addresses=127.0.0.1 -c max_connections=200"
      [ "$fast" -eq 1 ] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
      as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null \
        || { tail -n 30 "$dir/server.log" >&2; exit 1; }
    fi
    if [ "$json" -eq 1 ]; then
      printf '{"dir": "%s", "port": %s, "socket_dir": "%s", "url": "%s"}\n' \
        "$dir" "$(cat "$dir/port")" "$sock" "$(url "$db")"
    else
      url "$db"
    fi
    ;;
  stop)
    if [ -f "$data/PG_VERSION" ] && running; then
      as_owner "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
    fi
    [ "$purge" -eq 1 ] && rm -rf "$dir"
    exit 0
    ;;
  status)
    if running; then echo "running: $(url "$db")"; else echo "stopped"; exit 3; fi
    ;;
  url)
    [ -f "$dir/port" ] || { echo "postgres.sh: no cluster in $dir (start it first)" >&2; exit 3; }
    url "$db"
    ;;
  *)
    echo "usage: $0 start|stop|status|url [--dir DIR] [--port PORT] [--fast] [--json] [--purge] [--db NAME]" >&2
    exit 2
    ;;
esac
