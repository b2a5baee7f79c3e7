#!/usr/bin/env bash
# Overload and a reconnect storm against zkr and Apache ZooKeeper in the same run (issue 13).
# Not a test: figures only (shared machine; compare ratios).
#   bash tests/abuse-bench.sh                                   # 20 s at 4x, 2,000 sessions
#   SECS=60 SESSIONS=10000 bash tests/abuse-bench.sh            # the issue's long form
#   ARGS="--mode storm --target zkr" bash tests/abuse-bench.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECS=${SECS:-20}; SESSIONS=${SESSIONS:-2000}
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((2 * SESSIONS + 500)) ]; then
  echo "fd limit $(ulimit -n) is too low for $SESSIONS sessions" >&2
  exit 1
fi
cargo build --release -q -p zkr-server -p zkr-tests --bin zkr-server --bin abusebench
# abusebench starts and stops both servers itself (by pid, through the test harness).
# shellcheck disable=SC2086
ZKR_SERVER_BIN="$PWD/target/release/zkr-server" ./target/release/abusebench \
  --secs "$SECS" --sessions "$SESSIONS" ${ARGS:-}
