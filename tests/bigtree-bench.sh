#!/usr/bin/env bash
# Issue 16's table, zkr beside Apache ZooKeeper in the same run: 16 sessions x 8 in flight create
# N sequential 100-byte znodes under one parent on a standalone server; then the server is stopped
# and started again on the same data. Per size and server it prints the load rate, the reply
# latency during the load (p99 / p99.9 / max), RSS 3 s after the load and bytes per znode, the
# restart-to-serving time (a new session answered `exists /`) and RSS 3 s after the restart; then
# the ratios zkr / ZooKeeper. Not a test: figures only (the machine is shared and noisy).
#   bash tests/bigtree-bench.sh                 # 100k and 1M znodes (minutes; run it rarely)
#   SIZES=100000 bash tests/bigtree-bench.sh
#   SIDES=zkr SIZES=1000000 ZKR_CFG="zkr.snapshotPacing=true" bash tests/bigtree-bench.sh
#     (zkr alone, with extra zoo.cfg lines: an A/B of one setting in back-to-back runs;
#     KEEP_LOGS=/tmp/zkr.log keeps the server's log)
# For zkr it also prints the txn log's fsyncs during the load (count, p50/p99/max, from the
# server's "txn log syncs since start" line at shutdown) and the snapshots written meanwhile
# (and skipped: a snapshot due while the previous one is still being written, as ZooKeeper).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZES=${SIZES:-"100000 1000000"}; CLIENTS=${CLIENTS:-16}; WINDOW=${WINDOW:-8}
ZKR_PORT=${ZKR_PORT:-23191}; APACHE_PORT=${APACHE_PORT:-24191}
SIDES=${SIDES:-"zkr apache"}
APACHE=../shared/tools/apache-zookeeper
APACHE_DIR="${TMPDIR:-/tmp}/apache-zookeeper-$APACHE_PORT"
cargo build --release -q -p zkr-server -p zkr-tests --bin zkr-server --bin zkbench
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  $APACHE stop "$APACHE_PORT" >/dev/null 2>&1 || true
  if [ -n "${KEEP_LOGS:-}" ] && [ -f "$work/zkr/zkr.log" ]; then cp "$work/zkr/zkr.log" "$KEEP_LOGS"; fi
  rm -rf "$work"
}
trap cleanup EXIT

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
now_ms() { date +%s%3N; }
wait_exit() { for _ in $(seq 600); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; }
ready() { ./target/release/zkbench --addr "127.0.0.1:$1" --wait-ready 600000 >/dev/null; }
# The server's own max latency (mntr's zk_max_latency: a request's arrival to its reply, in ms);
# a client's max above it waited outside the server (the load generator, the kernel).
server_max_ms() {
  python3 - "$1" <<'PY' || echo "?"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"mntr")
out = b""
while chunk := s.recv(65536):
    out += chunk
print(dict(l.split("\t", 1) for l in out.decode().splitlines() if "\t" in l)["zk_max_latency"])
PY
}

start_zkr() { # fresh=1 makes a new data directory
  if [ "$1" = 1 ]; then
    rm -rf "$work/zkr"; mkdir -p "$work/zkr"
    cat > "$work/zkr/zoo.cfg" <<CFG
tickTime=2000
dataDir=$work/zkr/data
clientPort=$ZKR_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
${ZKR_CFG:-}
CFG
  fi
  "${ZKR_BIN:-./target/release/zkr-server}" "$work/zkr/zoo.cfg" 2>>"$work/zkr/zkr.log" &
  server_pid=$!
}

start_apache() { # fresh=1 lets the tool make a new data directory; 0 reruns its command line
  if [ "$1" = 1 ]; then
    $APACHE start "$APACHE_PORT" >/dev/null
    server_pid=$(cat "$APACHE_DIR/pid")
    tr '\0' '\n' < "/proc/$server_pid/cmdline" > "$work/apache-cmdline"
  else
    mapfile -t cmd < "$work/apache-cmdline"
    setsid "${cmd[@]}" >>"$APACHE_DIR/server.log" 2>&1 </dev/null &
    server_pid=$!
    echo "$server_pid" > "$APACHE_DIR/pid"
  fi
}

stop_server() { kill "$server_pid" 2>/dev/null || true; wait_exit "$server_pid"; server_pid=""; }

declare -A R
run_side() { # side size
  local side=$1 n=$2 port=$ZKR_PORT
  [ "$side" = apache ] && port=$APACHE_PORT
  "start_$side" 1
  ready "$port"
  local empty; empty=$(rss_kb "$server_pid")
  local out
  out=$(./target/release/zkbench --addr "127.0.0.1:$port" --workload seqcreate \
        --clients "$CLIENTS" --window "$WINDOW" --ops $((n / CLIENTS)) --label "$side-$n")
  echo "$out"
  echo "  $side: the server's own max latency during the load (mntr): $(server_max_ms "$port") ms"
  sleep 3
  R[$side-$n-rss]=$(rss_kb "$server_pid")
  R[$side-$n-empty]=$empty
  R[$side-$n-rate]=$(echo "$out" | grep -Eo '[0-9]+ ops/s' | awk '{print $1}')
  for q in p99 p999 max; do
    R[$side-$n-$q]=$(echo "$out" | grep -Eo " $q= *[0-9]+" | grep -Eo '[0-9]+$')
  done
  stop_server
  if [ "$side" = zkr ]; then
    local log="$work/zkr/zkr.log"
    sed -i 's/\x1b\[[0-9;]*m//g' "$log"
    R[$side-$n-snaps]=$(grep -c 'snapshot written' "$log" || true)
    R[$side-$n-skipped]=$(grep -c 'too busy to snapshot' "$log" || true)
    local syncs; syncs=$(grep 'txn log syncs since start' "$log" | tail -1 || true)
    for k in syncs p50_us p99_us max_us; do
      R[$side-$n-$k]=$(echo "$syncs" | grep -Eo " $k=[0-9]+" | grep -Eo '[0-9]+$' || echo 0)
    done
    echo "  zkr: txn log fsyncs during the load: ${R[$side-$n-syncs]:-?}," \
      "p50 ${R[$side-$n-p50_us]:-?} us, p99 ${R[$side-$n-p99_us]:-?} us," \
      "max ${R[$side-$n-max_us]:-?} us; snapshots written: ${R[$side-$n-snaps]}," \
      "skipped (the previous one still being written): ${R[$side-$n-skipped]}"
  fi
  local t0; t0=$(now_ms)
  "start_$side" 0
  ready "$port"
  R[$side-$n-restart]=$(( $(now_ms) - t0 ))
  sleep 3
  R[$side-$n-rss2]=$(rss_kb "$server_pid")
  if [ "$side" = zkr ]; then
    sed -i 's/\x1b\[[0-9;]*m//g' "$work/zkr/zkr.log"
    grep -Eo 'taken_us=[0-9]+' "$work/zkr/zkr.log" | sort -t= -k2 -n | tail -1 \
      | sed 's/^/  zkr: longest driver pause for a snapshot: /' || true
    grep -E 'snapshot (encoded|written)|slow (txn log sync|driver turn)|decoded|replayed|recovered|invariants hold' \
      "$work/zkr/zkr.log" | sed -E 's/^[^ ]+ +INFO [a-z_:]+: /  zkr: /'
    stop_server
  else
    stop_server
    $APACHE stop "$APACHE_PORT" >/dev/null
  fi
}

for n in $SIZES; do
  for side in $SIDES; do run_side "$side" "$n"; done
done

echo
echo "issue 16 table: $CLIENTS sessions x $WINDOW in flight, sequential 100-byte znodes" \
     "under one parent; $(date -u +%Y-%m-%d), $(nproc) cores"
for n in $SIZES; do
  args=()
  for side in zkr apache; do
    for k in rate p99 p999 max rss empty restart rss2 snaps p99_us max_us; do args+=("$side-$k=${R[$side-$n-$k]:-0}"); done
  done
  python3 - "$n" "${args[@]}" <<'PY'
import sys
n = int(sys.argv[1])
v = {k: float(x) for k, x in (a.split("=") for a in sys.argv[2:])}
def row(name, key, fmt, scale=1.0, better="lower"):
    z, a = v["zkr-" + key] * scale, v["apache-" + key] * scale
    ratio = f"{z / a:6.2f}x" if a else "     -"
    print(f"  {name:<34} {fmt.format(a):>12} {fmt.format(z):>12} {ratio}  ({better} is better)")
def per_node(side, key):
    return (v[f"{side}-{key}"] - v[f"{side}-empty"]) * 1024 / n
for side in ("zkr", "apache"):
    v[f"{side}-bpn"] = per_node(side, "rss")
    v[f"{side}-bpn2"] = per_node(side, "rss2")
print(f"{n} znodes:                              {'ZooKeeper':>12} {'zkr':>12}  zkr/ZooKeeper")
row("load rate, creates/s", "rate", "{:.0f}", better="higher")
row("latency during the load, p99 ms", "p99", "{:.1f}", 1e-3)
row("latency during the load, p99.9 ms", "p999", "{:.1f}", 1e-3)
row("latency during the load, max ms", "max", "{:.1f}", 1e-3)
row("RSS 3 s after the load, MiB", "rss", "{:.0f}", 1 / 1024)
row("  bytes per znode (RSS - empty) / n", "bpn", "{:.0f}")
row("restart to serving, ms", "restart", "{:.0f}")
row("RSS 3 s after the restart, MiB", "rss2", "{:.0f}", 1 / 1024)
row("  bytes per znode after the restart", "bpn2", "{:.0f}")
for side in ("zkr", "apache"):
    print(f"  {side}: max latency / p99 = {v[side + '-max'] / max(v[side + '-p99'], 1):.1f}")
print(f"  zkr: txn log fsync during the load p99 {v['zkr-p99_us'] / 1e3:.1f} ms, "
      f"max {v['zkr-max_us'] / 1e3:.1f} ms; snapshots written {v['zkr-snaps']:.0f}")
PY
done
