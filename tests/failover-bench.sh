#!/usr/bin/env bash
# Fail-over benchmark (not a test): a 3-server zkr ensemble and a 3-server Apache ZooKeeper 3.8
# ensemble (Debian's `zookeeper` package) with the same settings (tickTime=2000, initLimit=10,
# syncLimit=5). A client writes every 100 ms; the leader is stopped (SIGTERM), killed
# (kill -9), paused (SIGSTOP) or cut off the network while it keeps running (partition); the
# script prints, per fault and server, the time from the fault to the first write committed
# under the new leader, the failed writes, and the longest a write hung, then zkr/ZooKeeper
# ratios (lower is better for zkr). For the partition it also prints when the cut-off leader
# stopped calling itself leader, when a write sent to it by a client on its side of the cut
# got an answer (an error: it cannot commit without a quorum), and, after the network is
# healed, how long it took to rejoin as a follower.
#
#   tests/failover-bench.sh [ROUNDS]      ROUNDS per fault and server (default 3); medians shown
#   FAULTS=partition tests/failover-bench.sh 1     only some faults (comma-separated, from
#                                                  stop,kill,pause,partition; default all)
#   SERVERS=zookeeper tests/failover-bench.sh 1    only one server (zkr,zookeeper by default)
#   KEEP_LOGS=1 ...                                keep the servers' logs (the path is printed)
#
# Network: each server runs in its own network namespace (10.77.0.1-3, one veth each into a
# bridge); the bridge and the measuring client live in a namespace of their own, so nothing is
# added to the host's network. The partition disables the leader's bridge port: every packet
# to or from it is dropped silently, both ways, as a failed switch would (no reset, no carrier
# change; its connections stay open). Needs root (ip netns). Everything is created under a
# per-run name prefix and removed on exit, failure or interrupt: the processes inside the
# namespaces are killed by pid, then the namespaces deleted (their veths go with them).
#
# The client is a minimal ZooKeeper wire client (Python, below), the same for both servers, so
# the figures are the servers' and not a client library's retry policy: it starts on a
# follower (where most clients of a 3-server ensemble are), waits at most 4 s for a reply (as a
# client with a 6 s session would before declaring the server dead), and on any failure moves
# at once to the next server in its list, resuming its session. Every process it starts is
# stopped by its pid; state lives in a temp dir that is removed at the end.
#
# Build first: cargo build --release -p zkr-server (or set ZKR_SERVER_BIN).
set -euo pipefail
ROUNDS="${1:-3}"
FAULTS="${FAULTS:-stop,kill,pause,partition}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ZKR_BIN="${ZKR_SERVER_BIN:-$ROOT/target/release/zkr-server}"
if [[ "${SERVERS:-zkr}" == *zkr* ]] && [ ! -x "$ZKR_BIN" ]; then
  echo "zkr-server not found at $ZKR_BIN: cargo build --release -p zkr-server" >&2; exit 2
fi
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v bridge >/dev/null; then
  echo "needs root and iproute2 (ip, bridge) for its network namespaces" >&2; exit 2
fi
# shellcheck source=tests/apache-classpath.sh
source "$ROOT/tests/apache-classpath.sh"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/failover-bench.XXXXXX")"
TAG="zfb$$"           # names: namespaces $TAG-hub, $TAG-s1..3; veths ${TAG}h1.. (hub end)
HUB="$TAG-hub"
SUBNET=10.77.0
cleanup() {
  set +e
  for ns in "$TAG-s1" "$TAG-s2" "$TAG-s3" "$HUB"; do
    [ -e "/run/netns/$ns" ] || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null
    done
    ip netns del "$ns"
  done
  if [ -n "${KEEP_LOGS:-}" ]; then echo "servers' logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$HUB"
ip -n "$HUB" link set lo up
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" addr add "$SUBNET.254/24" dev br0
ip -n "$HUB" link set br0 up
for i in 1 2 3; do
  ns="$TAG-s$i"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$HUB" link add "${TAG}h$i" type veth peer name eth0 netns "$ns"
  ip -n "$HUB" link set "${TAG}h$i" master br0 up
  ip -n "$ns" addr add "$SUBNET.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
done

export ZKR_BIN CP WORK ROUNDS FAULTS TAG SUBNET
# The client runs in the background with `wait` (not exec): a signal to this script then runs
# the cleanup at once, which kills the client by pid with everything else in the namespaces.
cat > "$WORK/bench.py" <<'PY'
import ctypes, os, random, signal, socket, statistics, struct, subprocess, threading, time

ZKR_BIN, CP, WORK = os.environ["ZKR_BIN"], os.environ["CP"], os.environ["WORK"]
ROUNDS, TAG, SUBNET = int(os.environ["ROUNDS"]), os.environ["TAG"], os.environ["SUBNET"]
BASE = {"zkr": 28100, "zookeeper": 28200}   # client port BASE, quorum +11.., election +21..
ALL_FAULTS = {"stop": ("SIGTERM", signal.SIGTERM), "kill": ("kill -9", signal.SIGKILL),
              "pause": ("SIGSTOP", signal.SIGSTOP), "partition": ("partition", None)}
chosen = [f.strip() for f in os.environ["FAULTS"].split(",") if f.strip()]
for f in chosen:
    if f not in ALL_FAULTS:
        raise SystemExit(f"unknown fault {f!r}: choose from {','.join(ALL_FAULTS)}")
FAULTS = [ALL_FAULTS[f] for f in ALL_FAULTS if f in chosen]
SERVERS = [k.strip() for k in os.environ.get("SERVERS", "zkr,zookeeper").split(",")
           if k.strip()]
for k in SERVERS:
    if k not in BASE:
        raise SystemExit(f"unknown server {k!r}: choose from zkr,zookeeper")
HANG_S, PERIOD_S, WATCH_S, REJOIN_S = 4.0, 0.1, 30.0, 60.0
libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000

def host(i):
    """Server i's (0-based) address: it runs in namespace TAG-s{i+1}."""
    return f"{SUBNET}.{i + 1}"

def enter_namespace(i):
    """Moves the calling thread (only it) into server i's network namespace."""
    fd = os.open(f"/run/netns/{TAG}-s{i + 1}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)

def set_port(i, state):
    """Bridge port state of server i's veth: 0 disabled (every frame dropped), 3 forwarding."""
    subprocess.run(["bridge", "link", "set", "dev", f"{TAG}h{i + 1}", "state", str(state)],
                   check=True)

# ---- ensemble launchers -------------------------------------------------------------------
def start_ensemble(kind, run):
    base, procs = BASE[kind], []
    servers = "".join(f"server.{i + 1}={host(i)}:{base + 11 + i}:{base + 21 + i}\n"
                      for i in range(3))
    for i in range(3):
        d = os.path.join(WORK, f"{kind}-{run}-s{i + 1}")
        os.makedirs(os.path.join(d, "data"))
        with open(os.path.join(d, "data", "myid"), "w") as f:
            f.write(str(i + 1))
        cfg = os.path.join(d, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={d}/data\n"
                    f"clientPort={base}\nclientPortAddress={host(i)}\nmaxClientCnxns=0\n"
                    f"admin.enableServer=false\n4lw.commands.whitelist=*\n{servers}")
        if kind == "zkr":
            cmd = [ZKR_BIN, cfg]
        else:
            cmd = ["java", "-Xmx256m", "-cp", CP, "-Djava.awt.headless=true",
                   "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
        log = open(os.path.join(d, "server.log"), "w")
        # `ip netns exec` execs the command itself: the pid is the server's.
        procs.append(subprocess.Popen(["ip", "netns", "exec", f"{TAG}-s{i + 1}"] + cmd,
                                      stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      start_new_session=True))
    return [(host(i), base) for i in range(3)], procs

def stop_ensemble(procs):
    for p in procs:
        try:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
        except ProcessLookupError:
            pass
        p.wait()

def mode(addr):
    try:
        with socket.create_connection(addr, timeout=1) as s:
            s.sendall(b"srvr")
            s.settimeout(1)
            text = b""
            while chunk := s.recv(4096):
                text += chunk
        for line in text.decode().splitlines():
            if line.startswith("Mode: "):
                return line[6:]
    except OSError:
        return None

def wait_settled(addrs, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        modes = [mode(a) for a in addrs]
        if modes.count("leader") == 1 and modes.count("follower") == 2:
            return modes.index("leader")
        time.sleep(0.2)
    raise SystemExit(f"ensemble on {addrs} did not settle: {modes}")

# ---- a minimal ZooKeeper client -----------------------------------------------------------
class Expired(OSError):
    pass

class Conn:
    def __init__(self, addr, session, passwd, timeout_s):
        self.s = socket.create_connection(addr, timeout=1)
        self.s.settimeout(timeout_s)
        body = struct.pack(">iqiqi", 0, 0, 6000, session, len(passwd)) + passwd + b"\0"
        self.s.sendall(struct.pack(">i", len(body)) + body)
        r = self.frame()
        _, _, self.session, n = struct.unpack(">iiqi", r[:20])
        if self.session == 0:
            raise Expired("the session expired")
        self.passwd, self.xid = r[20:20 + n], 0

    def frame(self):
        head = self.exact(4)
        return self.exact(struct.unpack(">i", head)[0])

    def exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise OSError("closed by the server")
            out += chunk
        return out

    def set_data(self, path, data):
        self.xid += 1
        p = path.encode()
        body = struct.pack(">ii", self.xid, 5) + struct.pack(">i", len(p)) + p
        body += struct.pack(">i", len(data)) + data + struct.pack(">i", -1)
        self.s.sendall(struct.pack(">i", len(body)) + body)
        while True:
            r = self.frame()
            xid, zxid, err = struct.unpack(">iqi", r[:16])
            if xid == self.xid:
                if err != 0:
                    raise OSError(f"error {err}")
                return zxid
            # -1 watch events, -2 pings: ignore

    def create(self, path):
        self.xid += 1
        p = path.encode()
        body = struct.pack(">ii", self.xid, 1) + struct.pack(">i", len(p)) + p
        body += struct.pack(">i", 0) + struct.pack(">i", 1) + struct.pack(">ii", 31, 5)
        body += b"world" + struct.pack(">i", 6) + b"anyone" + struct.pack(">i", 0)
        self.s.sendall(struct.pack(">i", len(body)) + body)
        self.frame()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

class Writer(threading.Thread):
    """Writes every PERIOD_S; records (start, end, epoch of its zxid or None) per write."""
    def __init__(self, addrs, first):
        super().__init__(daemon=True)
        self.addrs, self.at, self.conn = addrs, first, None
        self.session, self.passwd = 0, b"\0" * 16
        self.records, self.stop = [], threading.Event()

    def connect(self):
        """Tries each server once, from the current one on."""
        for _ in range(len(self.addrs)):
            try:
                self.conn = Conn(self.addrs[self.at], self.session, self.passwd, HANG_S)
                self.session, self.passwd = self.conn.session, self.conn.passwd
                return
            except Expired:
                self.session, self.passwd = 0, b"\0" * 16
            except OSError:
                pass
            self.at = (self.at + 1) % len(self.addrs)
        raise OSError("no server took the connection")

    def run(self):
        next_at, n = time.time(), 0
        while not self.stop.is_set():
            start = time.time()
            try:
                if self.conn is None:
                    self.connect()
                zxid = self.conn.set_data("/bench", str(n).encode())
                self.records.append((start, time.time(), zxid >> 32))
            except (OSError, socket.timeout):
                self.records.append((start, time.time(), None))
                if self.conn:
                    self.conn.close()
                self.conn = None
                self.at = (self.at + 1) % len(self.addrs)
            n += 1
            next_at = max(next_at + PERIOD_S, time.time())
            time.sleep(max(0.0, next_at - time.time()))
        if self.conn:
            self.conn.close()

class CutOffSide(threading.Thread):
    """On the cut-off leader's side of a partition (in its namespace): a client connected to
    it before the cut sends one write after it, and the leader's `srvr` mode is polled.
    Records when the write got an answer (`write_s`, `write_ok`) and when the server stopped
    calling itself leader (`stepdown_s`), in seconds from `t0` (set by the caller)."""
    def __init__(self, leader, addr):
        super().__init__(daemon=True)
        self.leader, self.addr, self.t0 = leader, addr, None
        self.ready, self.go, self.done = threading.Event(), threading.Event(), threading.Event()
        self.write_s = self.write_ok = self.stepdown_s = None
        self.error = None

    def run(self):
        try:
            enter_namespace(self.leader)
            conn = Conn(self.addr, 0, b"\0" * 16, WATCH_S)
        except OSError as e:
            self.error = e
            self.ready.set()
            return
        poller = threading.Thread(target=self.poll, daemon=True)
        self.ready.set()
        self.go.wait()
        poller.start()
        time.sleep(0.1)
        try:
            conn.set_data("/bench", b"cut-off")
            self.write_ok = True
        except (OSError, socket.timeout):
            self.write_ok = False
        self.write_s = time.time() - self.t0
        conn.close()
        poller.join()
        self.done.set()

    def poll(self):
        enter_namespace(self.leader)
        while time.time() - self.t0 < WATCH_S:
            if mode(self.addr) != "leader":
                self.stepdown_s = time.time() - self.t0
                return
            time.sleep(0.05)

# ---- one measurement ----------------------------------------------------------------------
def measure(kind, fault, sig, run):
    addrs, procs = start_ensemble(kind, run)
    cut = None
    try:
        leader = wait_settled(addrs)
        follower = (leader + 1) % 3
        c = Conn(addrs[follower], 0, b"\0" * 16, 5)
        try:
            c.create("/bench")
        finally:
            c.close()
        side = None
        if sig is None:
            side = CutOffSide(leader, addrs[leader])
            side.start()
            side.ready.wait()
            if side.error:
                raise SystemExit(f"client in the leader's namespace: {side.error}")
        w = Writer(addrs, follower)
        w.start()
        time.sleep(3)
        epoch = max(r[2] for r in w.records if r[2] is not None)
        t0 = time.time()
        if sig is None:
            set_port(leader, 0)
            cut = leader
            side.t0 = t0
            side.go.set()
        else:
            os.kill(procs[leader].pid, sig)
        deadline = t0 + WATCH_S
        recovered = None
        while time.time() < deadline and recovered is None:
            time.sleep(0.05)
            # The first write the new leader committed (a newer epoch in its zxid).
            ok = [r for r in list(w.records) if r[2] is not None and r[2] > epoch]
            if ok:
                recovered = ok[0][1] - t0
        extra = None
        if sig is None:
            side.done.wait(WATCH_S + 5)
            time.sleep(1)
            healed = time.time()
            set_port(leader, 3)
            cut = None
            rejoin = None
            while time.time() - healed < REJOIN_S:
                if mode(addrs[leader]) == "follower":
                    rejoin = time.time() - healed
                    break
                time.sleep(0.1)
            extra = [side.stepdown_s, side.write_s, side.write_ok, rejoin, healed]
        time.sleep(2)
        w.stop.set()
        w.join(10)
        after = [r for r in w.records if r[1] >= t0]
        until = t0 + (recovered if recovered is not None else WATCH_S)
        failed = sum(1 for r in after if r[2] is None and r[0] <= until)
        if extra:
            extra[4] = sum(1 for r in after if r[2] is None and r[0] >= extra[4])
        hang = max((r[1] - max(r[0], t0) for r in after), default=0.0)
        return (recovered if recovered is not None else float("inf"), failed, hang), extra
    finally:
        if cut is not None:
            set_port(cut, 3)
        stop_ensemble(procs)

def median(xs):
    return statistics.median(xs)

def secs(x):
    return "never" if x is None else f"{x:.2f}s"

results, extras = {}, {}
for fault, sig in FAULTS:
    for kind in SERVERS:
        runs, more = [], []
        for run in range(ROUNDS):
            r, extra = measure(kind, fault, sig, f"{fault.replace(' ', '')}-{run}")
            runs.append(r)
            line = (f"  {kind:9} {fault:9} round {run + 1}: first write +{r[0]:.2f}s, "
                    f"{r[1]} failed, longest hang {r[2]:.2f}s")
            if extra:
                more.append(extra)
                stepdown, write_s, write_ok, rejoin, healed_failed = extra
                line += (f"; cut-off leader stepped down +{secs(stepdown)}, its client's "
                         f"write {'SUCCEEDED' if write_ok else 'failed'} +{secs(write_s)}, "
                         f"rejoined as follower {secs(rejoin)} after the heal, "
                         f"{healed_failed} failed writes after the heal")
            print(line, flush=True)
        results[(kind, fault)], extras[(kind, fault)] = runs, more

def ratio(x, y):
    return f"{x / y:.2f}" if y > 0 else ("1.00" if x == 0 else "inf")

print()
print(f"medians of {ROUNDS} rounds; client on a follower writing every 100 ms; "
      "tickTime=2000 syncLimit=5")
print(f"{'fault':10} {'server':10} {'first ok write':>15} {'failed':>7} {'longest hang':>13}")
for fault, _ in FAULTS:
    for kind in SERVERS:
        runs = results[(kind, fault)]
        rec, fail, hang = (median([r[i] for r in runs]) for i in range(3))
        print(f"{fault:10} {kind:10} {rec:>14.2f}s {fail:>7g} {hang:>12.2f}s")
    if len(SERVERS) < 2:
        continue
    z = [median([r[i] for r in results[("zkr", fault)]]) for i in range(3)]
    a = [median([r[i] for r in results[("zookeeper", fault)]]) for i in range(3)]
    print(f"{fault:10} {'zkr/zk':10} {ratio(z[0], a[0]):>15} {ratio(z[1], a[1]):>7} "
          f"{ratio(z[2], a[2]):>13}")
if any(extras.values()):
    print()
    print("partition, the cut-off leader (medians; 'never' counts as 60 s):")
    print(f"{'server':10} {'stepped down':>13} {'its client answered':>20} "
          f"{'rejoined after heal':>20} {'failed after heal':>18} {'writes accepted':>16}")
    meds = {}
    for kind in SERVERS:
        more = extras.get((kind, "partition")) or []
        if not more:
            continue
        med = [median([REJOIN_S if m[i] is None else m[i] for m in more]) for i in (0, 1, 3)]
        accepted = sum(1 for m in more if m[2])
        after_heal = median([m[4] for m in more])
        print(f"{kind:10} {med[0]:>12.2f}s {med[1]:>19.2f}s {med[2]:>19.2f}s "
              f"{after_heal:>18g} {accepted:>16}")
        meds[kind] = med
    if len(meds) == 2:
        z, a = meds["zkr"], meds["zookeeper"]
        print(f"{'zkr/zk':10} {ratio(z[0], a[0]):>13} {ratio(z[1], a[1]):>20} "
              f"{ratio(z[2], a[2]):>20}")
PY
ip netns exec "$HUB" python3 "$WORK/bench.py" &
wait $!
