#!/usr/bin/env bash
# Benchmark zkr against Apache ZooKeeper on this machine, in the same run, and print ratios.
# Not a test: figures only (machines here are shared and noisy; compare ratios, not absolutes).
#   bash tests/bench.sh                      # default sizes
#   OPS=20000 CLIENTS=32 bash tests/bench.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OPS=${OPS:-5000}; CLIENTS=${CLIENTS:-16}; WINDOW=${WINDOW:-16}
ZKR_PORT=${ZKR_PORT:-23181}; APACHE_PORT=${APACHE_PORT:-24181}
cargo build --release -q -p zkr-server -p zkr-tests --bin zkr-server --bin zkbench
dir=$(mktemp -d)
cat > "$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$ZKR_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
CFG
./target/release/zkr-server "$dir/zoo.cfg" 2>"$dir/zkr.log" &
zkr_pid=$!
trap 'kill $zkr_pid 2>/dev/null || true; ../shared/tools/apache-zookeeper stop $APACHE_PORT || true; rm -rf "$dir"' EXIT
../shared/tools/apache-zookeeper start "$APACHE_PORT" >/dev/null
apache_pid=$(cat "${TMPDIR:-/tmp}/apache-zookeeper-$APACHE_PORT/pid")
for _ in $(seq 50); do
  python3 -c "import socket;socket.create_connection(('127.0.0.1',$ZKR_PORT),timeout=1)" 2>/dev/null && break
  sleep 0.1
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
declare -A rate
for workload in create set get mixed; do
  for side in zkr apache; do
    port=$ZKR_PORT; [ "$side" = apache ] && port=$APACHE_PORT
    # Each workload gets fresh node names: clear /bench first.
    out=$(./target/release/zkbench --addr "127.0.0.1:$port" --workload "$workload" \
          --clients "$CLIENTS" --window "$WINDOW" --ops "$OPS" --label "$side" 2>&1 || true)
    echo "$out"
    rate[$side-$workload]=$(echo "$out" | grep -Eo '[0-9]+ ops/s' | awk '{print $1}')
  done
done
echo
echo "ratios (zkr / apache, ops/s):"
for workload in create set get mixed; do
  z=${rate[zkr-$workload]:-0}; a=${rate[apache-$workload]:-0}
  python3 -c "import sys; z,a=float(sys.argv[1]),float(sys.argv[2]); print(f'  {sys.argv[3]:<7} {z/a if a else 0:6.2f}x')" "$z" "$a" "$workload"
done
echo "resident memory after the run: zkr $(rss $zkr_pid) kB, apache $(rss $apache_pid) kB"
