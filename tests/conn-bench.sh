#!/usr/bin/env bash
# What an idle client connection costs: RSS growth per connection for zkr and Apache ZooKeeper in
# the same run, and the ratio. Figures only (shared machine; compare ratios).
#   bash tests/conn-bench.sh            # 3000 connections each
#   CONNS=10000 bash tests/conn-bench.sh
#   ARGS="--watches 200000" bash tests/conn-bench.sh   # and the RSS cost of a watch
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CONNS=${CONNS:-3000}
# Each connection is an fd in the server and one in connbench: raise the soft limit to the hard.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CONNS + 500)) ]; then
  echo "fd limit $(ulimit -n) is too low for $CONNS connections" >&2
  exit 1
fi
cargo build --release -q -p zkr-server -p zkr-tests --bin zkr-server --bin connbench
# connbench starts and stops both servers itself (by pid, through the test harness).
# shellcheck disable=SC2086
ZKR_SERVER_BIN="$PWD/target/release/zkr-server" ./target/release/connbench --conns "$CONNS" ${ARGS:-}
