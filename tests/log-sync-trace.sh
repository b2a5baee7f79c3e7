#!/usr/bin/env bash
# Where the txn log's slow syncs come from (issue 16): runs zkr-server standalone under strace
# (fsync/fdatasync/openat/rename/unlink, per thread, with times), loads it with zkbench
# (sequential creates, 16 sessions x 8 in flight, as tests/bigtree-bench.sh), samples
# /proc/diskstats every 10 ms, then classes every log fdatasync by what ran beside it: a roll
# on the log thread, a snapshot chunk's fdatasync, a snapshot being written, nothing of ours.
# For each sync of SLOW_MS or more it prints what the device wrote in the 100 ms before it
# (other tenants' writes show up there). Then it lines up the replies slower than twice the
# load's p99 (zkbench --slow-ms, by 100 ms window) with the same events: in a snapshot or not,
# the longest log sync meanwhile, and what the device wrote. Not a test: figures only.
#   bash tests/log-sync-trace.sh                  # 1M creates, traces kept in a temp dir
#   N=200000 OUT=/tmp/trace ZKR_BIN=... bash tests/log-sync-trace.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${N:-1000000}; PORT=${PORT:-23591}; SLOW_MS=${SLOW_MS:-20}
BIN=${ZKR_BIN:-./target/release/zkr-server}
out=${OUT:-$(mktemp -d)}
cargo build --release -q -p zkr-server -p zkr-tests --bin zkr-server --bin zkbench
rm -rf "$out/data"; mkdir -p "$out/data"
cat > "$out/zoo.cfg" <<CFG
tickTime=2000
dataDir=$out/data
clientPort=$PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
${ZKR_CFG:-}
CFG
strace -f --seccomp-bpf -qq -y -ttt -T -o "$out/strace" \
  -e trace=fsync,fdatasync,fadvise64,fallocate,ftruncate,openat,rename,renameat,renameat2,unlink,unlinkat \
  "$BIN" "$out/zoo.cfg" 2>"$out/zkr.log" &
tracer=$!
./target/release/zkbench --addr "127.0.0.1:$PORT" --wait-ready 60000 >/dev/null
server=$(pgrep -P "$tracer")
names() { for t in /proc/"$server"/task/*; do echo "$(basename "$t") $(cat "$t/comm")"; done; }
names > "$out/threads"
dev=$(df --output=source "$out" | tail -1 | sed 's|/dev/||')
( while kill -0 "$server" 2>/dev/null; do
    echo "$(date +%s.%N) $(grep " $dev " /proc/diskstats)"; sleep 0.01; done ) > "$out/diskstats" &
sampler=$!
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
./target/release/zkbench --addr "127.0.0.1:$PORT" --workload seqcreate --clients 16 --window 8 \
  --ops $((N / 16)) --label "zkr-$N" --slow-ms 1 2>"$out/slow" | tee "$out/load"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
names >> "$out/threads"
kill "$server"; wait "$tracer" || true; kill "$sampler" 2>/dev/null || true
echo "traces in $out"
p99_us=$(grep -Eo 'p99= *[0-9]+' "$out/load" | grep -Eo '[0-9]+$')
python3 - "$out" "$SLOW_MS" "$p99_us" <<'PY'
import bisect, collections, datetime, re, sys
d, slow_ms, p99_ms = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]) / 1000
names = dict(line.split()[:2] for line in open(f"{d}/threads"))
done = re.compile(r'^(\d+)\s+(\d+\.\d+) (\w+)\((.*)\)\s+= (-?\w+).*<([\d.]+)>$')
unf = re.compile(r'^(\d+)\s+(\d+\.\d+) (\w+)\((.*) <unfinished \.\.\.>$')
res = re.compile(r'^(\d+)\s+(\d+\.\d+) <\.\.\. (\w+) resumed>(.*)\)\s+= (-?\w+).*<([\d.]+)>$')
calls, pending = [], {}
for line in open(f"{d}/strace"):
    line = line.rstrip('\n')
    if m := done.match(line):
        tid, t, call, args, _, dur = m.groups()
        calls.append((float(t), float(t) + float(dur), tid, call, args))
    elif m := unf.match(line):
        tid, t, call, args = m.groups(); pending[tid] = (float(t), call, args)
    elif (m := res.match(line)) and m.group(1) in pending:
        tid, t, _, rest, _, _ = m.groups()
        t0, call, args = pending.pop(tid); calls.append((t0, float(t), tid, call, args + rest))
def target(call, args):
    if call.startswith(('open', 'rename', 'unlink')):
        return ' '.join(p.split('/')[-1] for p in re.findall(r'"([^"]*)"', args))
    m = re.match(r'\d+<([^>]*)>', args)
    return m.group(1).split('/')[-1] if m else '?'
ev = sorted((s, e, names.get(tid, 'zkr-logroll' if tid.isdigit() else tid), c, target(c, a))
            for s, e, tid, c, a in calls if not c.startswith('open') or 'version-2' in a)
t0 = ev[0][0]
is_log = lambda x: x[2] == 'zkr-txnlog' and x[3] == 'fdatasync' and x[4].startswith('log.')
logs = [x for x in ev if is_log(x)]
snaps, cur = [], None
for x in ev:
    if x[3] == 'openat' and x[4].endswith('.tmp'): cur = x[0]
    if x[3].startswith('rename') and cur: snaps.append((cur, x[1])); cur = None
chunk = [x for x in ev if x[2] == 'zkr-snapshot' and x[3] in ('fdatasync', 'fsync')]
starts = [x[0] for x in chunk]
rolls = [x for x in ev if x[2] == 'zkr-txnlog' and x[3] == 'openat' and x[4].startswith('log.')]
def kind(x):
    i = bisect.bisect_left(starts, x[1])
    if any(chunk[j][1] > x[0] for j in range(max(0, i - 3), i)):
        return 'beside a snapshot chunk sync'
    if any(a <= x[0] <= b for a, b in snaps): return 'in a snapshot write, no chunk sync'
    return 'outside snapshots'
classes = collections.defaultdict(list)
for x in logs: classes[kind(x)].append(x[1] - x[0])
roll_cost = []
for r in rolls[1:]:
    after = [x for x in ev if x[2] == 'zkr-txnlog' and r[0] <= x[0] <= r[0] + 0.2][:4]
    roll_cost.append(after[-1][1] - r[0])
if roll_cost: classes['roll on the log thread (create, sync, dir fsync)'] = roll_cost
for name, v in classes.items():
    v.sort(); q = lambda p: v[min(len(v) - 1, int(len(v) * p))] * 1e3
    print(f"  {name:<50} n={len(v):6d} p50 {q(.5):6.2f} p99 {q(.99):6.2f} max {v[-1]*1e3:6.1f} ms")
made = [x for x in ev if x[2] == 'zkr-logroll' and x[3] == 'openat' and x[4].startswith('log.')]
print(f"  snapshots {len(snaps)}, files made ahead by zkr-logroll: {len(made)}")
rows = (line.split() for line in open(f"{d}/diskstats"))
ds = [(float(f[0]), [int(z) for z in f[4:]]) for f in rows if len(f) > 12]
dt = [t for t, _ in ds]
at = lambda t: ds[min(bisect.bisect_left(dt, t), len(ds) - 1)][1]
for x in logs:
    if (x[1] - x[0]) * 1e3 >= slow_ms:
        a, b = at(x[0] - 0.1), at(x[1])
        print(f"  slow sync at {x[0]-t0:7.3f}s {1e3*(x[1]-x[0]):6.1f} ms, {kind(x)}; device wrote "
              f"{(b[6]-a[6])/2048:.1f} MiB in the 100 ms before")
day = datetime.datetime.fromtimestamp(t0, datetime.timezone.utc)
day = day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
windows = []
for line in open(f"{d}/slow"):
    if m := re.match(r'slow replies at (\d+):(\d+):(\d+)\.(\d+) UTC: (\d+), max (\d+) ms', line):
        h, mi, s, ms, n, mx = map(int, m.groups())
        windows.append((day + h * 3600 + mi * 60 + s + ms / 1000, n, mx))
in_snap = lambda t: any(a <= t <= b for a, b in snaps)
print(f"  replies slower than 2 x p99 ({2 * p99_ms:.1f} ms), by the 100 ms window they arrived in:")
tally = collections.Counter()
for w, n, mx in windows:
    if mx < 2 * p99_ms: continue
    lo, hi = w - mx / 1e3, w + 0.1
    beside = [x[1] - x[0] for x in logs if x[1] >= lo and x[0] <= hi]
    snap = 'in a snapshot' if in_snap(lo) or in_snap(w) else 'no snapshot'
    a, b = at(lo - 0.1), at(hi)
    mib = (b[6] - a[6]) / 2048
    tally[(snap, 'device wrote >= 100 MiB' if mib >= 100 else 'device wrote < 100 MiB')] += 1
    print(f"    at {w - t0:7.3f}s max {mx:4d} ms, {snap}; longest log sync meanwhile "
          f"{1e3 * max(beside, default=0):5.1f} ms; the device wrote {mib:6.1f} MiB")
for k, v in sorted(tally.items()):
    print(f"    windows {k[0]}, {k[1]}: {v}")
PY
