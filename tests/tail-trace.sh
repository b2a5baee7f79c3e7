#!/usr/bin/env bash
# Issue 16's tail at a million znodes: which replies exceed 2x the p99, and what the server was
# doing then. Runs tests/bigtree-bench.sh's load (16 sessions x 8 in flight, N sequential
# 100-byte creates, zkr standalone, forceSync on) with the data directory on each of DIRS in
# turn (default: the disk under /tmp, then tmpfs /dev/shm), REPS times interleaved, with the
# server's per-sync and per-turn debug lines on (RUST_LOG) and zkbench's --slow-ms. Per run it
# prints the client's p99 / p99.9 / max, the server's own max (mntr: a request's arrival at the
# driver to its reply handed to the connection's writer), the longest log sync and driver turn,
# and for every 100 ms window holding a reply slower than 2x the p99: the longest log sync and
# its batch, the longest driver turn meanwhile, and whether a snapshot was being taken or
# written. Not a test: figures only.
#   bash tests/tail-trace.sh
#   N=200000 REPS=1 DIRS="/dev/shm" bash tests/tail-trace.sh
#   CLIENTS=4 WINDOW=32 bash tests/tail-trace.sh   (the same 128 in flight from 4 threads)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${N:-1000000}; REPS=${REPS:-2}; PORT=${PORT:-$((20000 + RANDOM % 40000))}
CLIENTS=${CLIENTS:-16}; WINDOW=${WINDOW:-8}
DIRS=${DIRS:-"${TMPDIR:-/tmp} /dev/shm"}
BIN=${ZKR_BIN:-./target/release/zkr-server}
cargo build --release -q -p zkr-server -p zkr-tests --bin zkr-server --bin zkbench
server=""; work=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  if [ -n "$work" ] && [ -z "${KEEP:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
mntr() {
  python3 - "$PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"mntr")
out = b""
while chunk := s.recv(65536):
    out += chunk
print(out.decode())
PY
}
run() { # dir
  work=$(mktemp -d "$1/tail-trace-XXXXXX")
  mkdir -p "$work/data"
  cat > "$work/zoo.cfg" <<CFG
tickTime=2000
dataDir=$work/data
clientPort=$PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
${ZKR_CFG:-}
CFG
  RUST_LOG=${RUST_LOG:-info,zkr_server::driver=debug,zkr_server::storage=debug} \
    "$BIN" "$work/zoo.cfg" 2>"$work/zkr.log" &
  server=$!
  ./target/release/zkbench --addr "127.0.0.1:$PORT" --wait-ready 60000 >/dev/null
  local before; before=$(cut -d' ' -f1-3 /proc/loadavg)
  ./target/release/zkbench --addr "127.0.0.1:$PORT" --workload seqcreate --clients "$CLIENTS" \
    --window "$WINDOW" --ops $((N / CLIENTS)) --label "zkr-$N" --slow-ms 1 \
    2>"$work/slow" >"$work/load"
  local after; after=$(cut -d' ' -f1-3 /proc/loadavg)
  mntr > "$work/mntr"
  kill "$server"; wait "$server" || true; server=""
  sed -i 's/\x1b\[[0-9;]*m//g' "$work/zkr.log"
  echo "== data on $1 ($(df --output=fstype "$work" | tail -1)), $(date -u +%H:%M:%S) UTC," \
       "load average before $before, after $after"
  python3 - "$work" <<'PY'
import bisect, datetime, re, sys
d = sys.argv[1]
load = open(f"{d}/load").read()
q = {k: int(v) for k, v in re.findall(r' (p99|p999|max)= *(\d+)', load)}
rate = re.search(r'(\d+) ops/s', load).group(1)
mntr = dict(l.split('\t', 1) for l in open(f"{d}/mntr").read().split('\n') if '\t' in l)
p99 = q['p99'] / 1e3
def ts(line):
    t = datetime.datetime.fromisoformat(line.split()[0].replace('Z', '+00:00'))
    return t.timestamp()
syncs, turns, snaps, taken = [], [], [], []
cur = None
for line in open(f"{d}/zkr.log"):
    if m := re.search(r'txn log sync sync_us=(\d+) cpu_us=(\d+) records=(\d+)', line):
        e = ts(line); us = int(m.group(1))
        syncs.append((e - us / 1e6, e, us, int(m.group(3)), int(m.group(2))))
    elif m := re.search(r'DEBUG .*driver turn busy_us=(\d+) step_us=(\d+) cpu_us=(\d+) '
                        r'handled=(\d+) what="?([^"]*)', line):
        e = ts(line); us = int(m.group(1))
        turns.append((e - us / 1e6, e, us, int(m.group(3)), int(m.group(4)), m.group(5)))
    elif re.search(r'INFO zkr_server::driver: snapshot zxid', line) or ' snapshot zxid=' in line:
        m = re.search(r'taken_us=(\d+)', line)
        cur = ts(line); taken.append(int(m.group(1)) if m else 0)
    elif re.search(r'snapshot 0x[0-9a-f]+ saved', line) and cur:
        snaps.append((cur, ts(line))); cur = None
day = datetime.datetime.fromtimestamp(syncs[0][0], datetime.timezone.utc)
day = day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
windows = []
for line in open(f"{d}/slow"):
    if m := re.match(r'slow replies at (\d+):(\d+):(\d+)\.(\d+) UTC: (\d+), max (\d+) ms', line):
        h, mi, s, ms, n, mx = map(int, m.groups())
        windows.append((day + h * 3600 + mi * 60 + s + ms / 1000, n, mx))
t0 = min(w[0] for w in windows) if windows else syncs[0][0]
sv = sorted(x[2] for x in syncs); tv = sorted(x[2] for x in turns)
pick = lambda v, p: v[min(len(v) - 1, int(len(v) * p))] / 1e3 if v else 0
print(f"  {rate} creates/s; client p99 {q['p99']/1e3:.1f} p99.9 {q['p999']/1e3:.1f} max "
      f"{q['max']/1e3:.1f} ms (max/p99 {q['max']/q['p99']:.1f}); server max "
      f"{mntr.get('zk_max_latency', '?')} ms avg {mntr.get('zk_avg_latency', '?')} ms")
turn_cpu = max((x[3] for x in turns), default=0) / 1e3
print(f"  log syncs {len(syncs)}: p50 {pick(sv,.5):.2f} p99 {pick(sv,.99):.2f} "
      f"max {pick(sv,1):.1f} ms; batch max {max(x[3] for x in syncs)} records; "
      f"driver turns >= 1 ms: {len(turns)}, max {pick(tv,1):.1f} ms (cpu {turn_cpu:.1f}); "
      f"snapshots {len(snaps)}, driver pause for one max {max(taken, default=0)} us")
def inside(x): return any(a <= x[1] and b >= x[0] for a, b in snaps)
for name, v in (('in a snapshot', [x[2] for x in syncs if inside(x)]),
                ('no snapshot', [x[2] for x in syncs if not inside(x)])):
    v.sort()
    if v:
        print(f"  log syncs {name}: {len(v)}, p50 {pick(v,.5):.2f} p99 {pick(v,.99):.2f} "
              f"p99.9 {pick(v,.999):.1f} max {pick(v,1):.1f} ms")
lim = 2 * p99
slow = [w for w in windows if w[2] >= lim]
print(f"  100 ms windows with a reply > 2 x p99 ({lim:.1f} ms): {len(slow)}")
tally = {}
for w, n, mx in slow:
    lo, hi = w - mx / 1e3, w + 0.1
    bs = [x for x in syncs if x[1] >= lo and x[0] <= hi]
    bt = [x for x in turns if x[1] >= lo and x[0] <= hi]
    # A reply can wait for the sync in progress when it arrived, then for its own.
    mine = [x for x in syncs if x[1] >= lo and x[0] <= w]
    total = sum(min(x[1], w) - max(x[0], lo) for x in mine) * 1e3
    ls = max(bs, key=lambda x: x[2], default=(0, 0, 0, 0, 0))
    lt = max(bt, key=lambda x: x[2], default=(0, 0, 0, 0, 0, '-'))
    sn = any(a <= hi and b >= lo for a, b in snaps)
    # What the reply waited for, by the longest of: the disk (a sync's time off the CPU), a
    # core (a turn's or a sync's time off the CPU), our code (a turn's time on the CPU).
    parts = {'log syncs off the CPU': max(total - ls[4] / 1e3, (ls[2] - ls[4]) / 1e3),
             'a log sync on the CPU': ls[4] / 1e3,
             'a driver turn off the CPU': (lt[2] - lt[3]) / 1e3,
             'a driver turn on the CPU': lt[3] / 1e3}
    why = max(parts, key=parts.get)
    if parts[why] < mx / 4: why = 'none of these (client or network side)'
    tally[why] = tally.get(why, 0) + 1
    print(f"    {w - t0:7.3f}s n={n:4d} max {mx:4d} ms | syncs {total:5.1f} ms, "
          f"longest {ls[2]/1e3:5.1f} ms (cpu {ls[4]/1e3:.1f}, {ls[3]} records) | "
          f"longest turn {lt[2]/1e3:5.1f} ms "
          f"(cpu {lt[3]/1e3:.1f}, {lt[5]}, {lt[4]} events) | {'snapshot' if sn else '-'}")
for why, n in sorted(tally.items(), key=lambda x: -x[1]):
    print(f"  windows mostly waiting for {why}: {n}")
PY
  if [ -n "${KEEP:-}" ]; then echo "  kept $work"; else rm -rf "$work"; fi
  work=""
}
for _ in $(seq "$REPS"); do
  for dir in $DIRS; do run "$dir"; done
done
