#!/usr/bin/env bash
# Issue 16: a follower that missed N txns rejoins; how long does its sync take, and does it grow
# with N or with the tree? Not a test: figures only (the machine is shared and noisy). The same
# rejoin beside a 3-server Apache ZooKeeper ensemble: tests/rejoin-vs-zk-bench.sh.
#
# A 3-server zkr ensemble on loopback gets TREE sequential 100-byte znodes; then, for each N in
# MISSED, one follower is stopped (SIGTERM), N more znodes are created through the leader, and
# the follower is started again. Printed per N: how it synced (DIFF from the leader's memory
# while N is within its window, commitLogCount = 500 as in ZooKeeper; past it a DIFF read from
# the leader's txn log files up to zkr.diskDiffMaxTxns = snapCount, then SNAP), its local
# recovery time
# (its own snapshot and log), and the time from recovered to "synced; serving" (finding the
# leader, the sync itself, and writing what it received), from the follower's log timestamps.
#   bash tests/rejoin-bench.sh                          # TREE=200000 MISSED="100 500 5000"
#   TREE=1000000 MISSED="100 500" bash tests/rejoin-bench.sh
#   KEEP_LOGS=/tmp/rejoin bash tests/rejoin-bench.sh      # keeps the servers' logs
#   DISK_DIFF_MAX=0 MISSED="2000 20000" bash tests/rejoin-bench.sh   # no DIFF from the log files
#     (zkr.diskDiffMaxTxns=0: what a rejoin cost before issue 16's log DIFF, SNAP past 500)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TREE=${TREE:-200000}; MISSED=${MISSED:-"100 500 5000"}; BASE=${BASE:-29200}
cargo build --release -q -p zkr-server -p zkr-tests --bin zkr-server --bin zkbench
work=$(mktemp -d)
declare -A pid
cleanup() {
  for i in "${!pid[@]}"; do kill "${pid[$i]}" 2>/dev/null || true; done
  if [ -n "${KEEP_LOGS:-}" ]; then
    mkdir -p "$KEEP_LOGS"
    for i in 1 2 3; do cp "$work/s$i/zkr.log" "$KEEP_LOGS/s$i.log" || true; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

servers=""
for i in 1 2 3; do servers+="server.$i=127.0.0.1:$((BASE + 10 + i)):$((BASE + 20 + i))"$'\n'; done
start() { # server number
  ./target/release/zkr-server "$work/s$1/zoo.cfg" 2>>"$work/s$1/zkr.log" &
  pid[$1]=$!
}
for i in 1 2 3; do
  mkdir -p "$work/s$i/data"
  echo "$i" > "$work/s$i/data/myid"
  cat > "$work/s$i/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$work/s$i/data
clientPort=$((BASE + i))
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
${DISK_DIFF_MAX:+zkr.diskDiffMaxTxns=$DISK_DIFF_MAX}
$servers
CFG
  start "$i"
done
mode() { # server number -> leader/follower
  exec 3<>"/dev/tcp/127.0.0.1/$((BASE + $1))"
  printf srvr >&3
  sed -n 's/^Mode: //p' <&3
  exec 3>&-
}
for i in 1 2 3; do ./target/release/zkbench --addr "127.0.0.1:$((BASE + i))" --wait-ready 60000 >/dev/null; done
leader=""
for _ in $(seq 100); do
  for i in 1 2 3; do [ "$(mode "$i" 2>/dev/null)" = leader ] && leader=$i; done
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "$leader" ] || { echo "no leader elected" >&2; exit 1; }
follower=$(( leader % 3 + 1 ))
create() { # count -> creates that many znodes through the leader
  local clients=16; [ "$1" -lt 1600 ] && clients=1
  ./target/release/zkbench --addr "127.0.0.1:$((BASE + leader))" --workload seqcreate \
    --clients "$clients" --window 8 --ops $(( $1 / clients )) --label "rejoin" >/dev/null
}
create "$TREE"
echo "rejoin: 3 zkr servers, $TREE znodes; leader s$leader, follower s$follower restarts"
for n in $MISSED; do
  kill "${pid[$follower]}"; wait "${pid[$follower]}" 2>/dev/null || true
  create "$n"
  log="$work/s$follower/zkr.log"
  before=$(grep -c 'synced; serving' "$log" || true)
  leader_log="$work/s$leader/zkr.log"
  disk_before=$(grep -c 'syncing a learner by DIFF from the txn log files' "$leader_log" || true)
  start "$follower"
  for _ in $(seq 6000); do
    [ "$(grep -c 'synced; serving' "$log" || true)" -gt "$before" ] && break
    sleep 0.01
  done
  disk_after=$(grep -c 'syncing a learner by DIFF from the txn log files' "$leader_log" || true)
  python3 - "$log" "$n" "$(( disk_after - disk_before ))" <<'PY'
import re, sys
from datetime import datetime
text = re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[1]).read())
run = text[text.rfind("\n", 0, text.rfind("recovered read_ms")) + 1:]
def at(line_part):
    line = next(l for l in run.splitlines() if line_part in l)
    return datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")), line
t_rec, rec = at("recovered read_ms")
t_sync, _ = at("synced; serving")
how = "SNAP" if "installing the leader's snapshot" in run else "DIFF"
if how == "DIFF":
    how = "DIFF (log files)" if int(sys.argv[3]) > 0 else "DIFF (memory)"
local = re.search(r"total_ms=(\d+)", rec).group(1)
sync_ms = (t_sync - t_rec).total_seconds() * 1000
print(f"  missed {int(sys.argv[2]):>7} txns: {how:16}, local recovery {local:>5} ms, "
      f"recovered -> synced {sync_ms:7.0f} ms")
PY
done
