#!/usr/bin/env bash
# A private HAProxy (Debian's `haproxy`) in front of storagectl serve replicas.
#   scripts/haproxy/haproxy.sh render --dir D --port P [--stats-port S] --server NAME=HOST:PORT ...
#   scripts/haproxy/haproxy.sh start  --dir D --port P [--stats-port S] --server NAME=HOST:PORT ... [--json]
#   scripts/haproxy/haproxy.sh stop   --dir D
#   scripts/haproxy/haproxy.sh stat   --dir D          # name,status (UP/DOWN/MAINT...) per replica
# State dir D holds haproxy.cfg, haproxy.pid, haproxy.sock (admin stats socket, 0600) and
# haproxy.log. Binds 127.0.0.1 unless --bind-host says otherwise. The config template is
# scripts/haproxy/haproxy.cfg.in (docs/cluster.md).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"
[ $# -gt 0 ] && shift
dir=""
port=""
stats_port=""
bind_host="127.0.0.1"
json=0
servers=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --stats-port) stats_port="$2"; shift 2 ;;
    --bind-host) bind_host="$2"; shift 2 ;;
    --server) servers+=("$2"); shift 2 ;;
    --json) json=1; shift ;;
    *) echo "haproxy.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$dir" ] || { echo "haproxy.sh: --dir is required" >&2; exit 2; }
is_port() { [[ "$1" =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cfg="$dir/haproxy.cfg"
pidfile="$dir/haproxy.pid"
sock="$dir/haproxy.sock"

render() {
  [ -n "$port" ] || { echo "haproxy.sh: --port is required" >&2; exit 2; }
  is_port "$port" || { echo "haproxy.sh: --port must be 1-65535, got $port" >&2; exit 2; }
  [ -n "$stats_port" ] || stats_port="$(free_port)"
  is_port "$stats_port" || { echo "haproxy.sh: --stats-port must be 1-65535, got $stats_port" >&2; exit 2; }
  [[ "$bind_host" =~ ^[0-9.]+$ ]] || { echo "haproxy.sh: --bind-host must be an IPv4 address, got $bind_host" >&2; exit 2; }
  ((${#servers[@]})) || { echo "haproxy.sh: give at least one --server NAME=HOST:PORT" >&2; exit 2; }
  local lines="" s name addr
  for s in "${servers[@]}"; do
    name="${s%%=*}"; addr="${s#*=}"
    [[ "$name" =~ ^[A-Za-z0-9_.-]{1,32}$ ]] || { echo "haproxy.sh: server name must be 1-32 of A-Z a-z 0-9 _ . -, got $name" >&2; exit 2; }
    [[ "$addr" =~ ^[0-9.]+:[0-9]{1,5}$ ]] || { echo "haproxy.sh: server address must be IPV4:PORT, got $addr" >&2; exit 2; }
    lines+="    server $name $addr"$'\n'
  done
  mkdir -p "$dir"
  chmod 0700 "$dir"
  SERVERS="$lines" awk -v dir="$dir" -v bind="$bind_host:$port" -v stats="127.0.0.1:$stats_port" '
    /^@SERVERS@$/ { printf "%s", ENVIRON["SERVERS"]; next }
    { gsub(/@DIR@/, dir); gsub(/@BIND@/, bind); gsub(/@STATS_BIND@/, stats); print }
  ' "$HERE/haproxy.cfg.in" >"$cfg"
  echo "$stats_port" >"$dir/stats_port"
  haproxy -c -q -f "$cfg" >/dev/null || { haproxy -c -f "$cfg" >&2; exit 1; }
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

stat_csv() {  # "show stat" of the replicas' backend over the admin socket
  python3 - "$sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
for line in data.decode().splitlines():
    f = line.split(",")
    if len(f) > 17 and f[0] == "storage_api_replicas" and f[1] not in ("FRONTEND", "BACKEND"):
        print(f"{f[1]},{f[17]}")
PY
}

case "$cmd" in
  render) render; cat "$cfg" ;;
  start)
    command -v haproxy >/dev/null || { echo "haproxy.sh: haproxy missing (apt-get install haproxy; scripts/install-deps.sh does)" >&2; exit 2; }
    running && { echo "haproxy.sh: already running in $dir (pid $(cat "$pidfile"))" >&2; exit 1; }
    render
    rm -f "$sock"
    # in the foreground (-db) of a background process: its log goes to haproxy.log
    setsid haproxy -db -f "$cfg" >"$dir/haproxy.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 100); do
      [ -S "$sock" ] && break
      running || { cat "$dir/haproxy.log" >&2; exit 1; }
      sleep 0.1
    done
    [ -S "$sock" ] || { echo "haproxy.sh: no stats socket after 10 s" >&2; exit 1; }
    if [ "$json" -eq 1 ]; then
      printf '{"dir": "%s", "port": %s, "stats_port": %s, "socket": "%s", "pid": %s}\n' \
        "$dir" "$port" "$stats_port" "$sock" "$(cat "$pidfile")"
    else
      echo "haproxy on $bind_host:$port, stats http://127.0.0.1:$stats_port/stats, socket $sock"
    fi
    ;;
  stop)
    if running; then
      pid="$(cat "$pidfile")"
      kill -TERM "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$pidfile" "$sock"
    ;;
  stat)
    running || { echo "haproxy.sh: not running in $dir" >&2; exit 3; }
    stat_csv
    ;;
  *)
    echo "usage: $0 render|start|stop|stat --dir D [--port P] [--stats-port S] [--bind-host A] [--server NAME=HOST:PORT]... [--json]" >&2
    exit 2
    ;;
esac
