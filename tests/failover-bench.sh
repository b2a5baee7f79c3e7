#!/usr/bin/env bash
# Fail-over benchmark (not a test): a 3-server zkr ensemble and a 3-server Apache ZooKeeper 3.8
# ensemble (Debian's `zookeeper` package), both on loopback with their own ports and the same
# settings (tickTime=2000, initLimit=10, syncLimit=5). A client writes every 100 ms; the leader
# gets SIGTERM, kill -9 or SIGSTOP; the script prints, per fault and server, the time from the
# fault to the first successful write issued after it, the failed writes, and the longest a
# write hung, then zkr/ZooKeeper ratios (lower is better for zkr).
#
#   tests/failover-bench.sh [ROUNDS]      ROUNDS per fault and server (default 3); medians shown
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
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ZKR_BIN="${ZKR_SERVER_BIN:-$ROOT/target/release/zkr-server}"
if [ ! -x "$ZKR_BIN" ]; then
  echo "zkr-server not found at $ZKR_BIN: cargo build --release -p zkr-server" >&2; exit 2
fi
if [ ! -f /usr/share/java/zookeeper.jar ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper) >/dev/null
fi
CP=/usr/share/java/zookeeper.jar
for j in netty-codec netty-resolver netty-transport-native-unix-common netty-all slf4j-simple; do
  [ -f "/usr/share/java/$j.jar" ] && CP="$CP:/usr/share/java/$j.jar"
done
WORK="$(mktemp -d "${TMPDIR:-/tmp}/failover-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export ZKR_BIN CP WORK ROUNDS
exec python3 - <<'PY'
import os, random, signal, socket, statistics, struct, subprocess, threading, time

ZKR_BIN, CP, WORK, ROUNDS = os.environ["ZKR_BIN"], os.environ["CP"], os.environ["WORK"], int(os.environ["ROUNDS"])
BASE = {"zkr": 25100, "zookeeper": 25200}   # client ports BASE+1..3, quorum +11.., election +21..
FAULTS = [("SIGTERM", signal.SIGTERM), ("kill -9", signal.SIGKILL), ("SIGSTOP", signal.SIGSTOP)]
HANG_S, PERIOD_S, WATCH_S = 4.0, 0.1, 30.0

# ---- ensemble launchers -------------------------------------------------------------------
def start_ensemble(kind, run):
    base, procs = BASE[kind], []
    servers = "".join(f"server.{i}=127.0.0.1:{base + 10 + i}:{base + 20 + i}\n" for i in (1, 2, 3))
    for i in (1, 2, 3):
        d = os.path.join(WORK, f"{kind}-{run}-s{i}")
        os.makedirs(os.path.join(d, "data"))
        with open(os.path.join(d, "data", "myid"), "w") as f:
            f.write(str(i))
        cfg = os.path.join(d, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={d}/data\n"
                    f"clientPort={base + i}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n"
                    f"admin.enableServer=false\n4lw.commands.whitelist=*\n{servers}")
        if kind == "zkr":
            cmd = [ZKR_BIN, cfg]
        else:
            cmd = ["java", "-Xmx256m", "-cp", CP, "-Djava.awt.headless=true",
                   "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
        log = open(os.path.join(d, "server.log"), "w")
        procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      start_new_session=True))
    return [base + i for i in (1, 2, 3)], procs

def stop_ensemble(procs):
    for p in procs:
        try:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
        except ProcessLookupError:
            pass
        p.wait()

def mode(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
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

def wait_settled(ports, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        modes = [mode(p) for p in ports]
        if modes.count("leader") == 1 and modes.count("follower") == 2:
            return modes.index("leader")
        time.sleep(0.2)
    raise SystemExit(f"ensemble on {ports} did not settle: {modes}")

# ---- a minimal ZooKeeper client -----------------------------------------------------------
class Expired(OSError):
    pass

class Conn:
    def __init__(self, port, session, passwd, timeout_s):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=1)
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
    def __init__(self, ports, first):
        super().__init__(daemon=True)
        self.ports, self.at, self.conn = ports, first, None
        self.session, self.passwd = 0, b"\0" * 16
        self.records, self.stop = [], threading.Event()

    def connect(self):
        """Tries each server once, from the current one on."""
        for _ in range(len(self.ports)):
            try:
                self.conn = Conn(self.ports[self.at], self.session, self.passwd, HANG_S)
                self.session, self.passwd = self.conn.session, self.conn.passwd
                return
            except Expired:
                self.session, self.passwd = 0, b"\0" * 16
            except OSError:
                pass
            self.at = (self.at + 1) % len(self.ports)
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
                self.at = (self.at + 1) % len(self.ports)
            n += 1
            next_at = max(next_at + PERIOD_S, time.time())
            time.sleep(max(0.0, next_at - time.time()))
        if self.conn:
            self.conn.close()

# ---- one measurement ----------------------------------------------------------------------
def measure(kind, fault, sig, run):
    ports, procs = start_ensemble(kind, run)
    try:
        leader = wait_settled(ports)
        follower = (leader + 1) % 3
        c = Conn(ports[follower], 0, b"\0" * 16, 5)
        try:
            c.create("/bench")
        finally:
            c.close()
        w = Writer(ports, follower)
        w.start()
        time.sleep(3)
        epoch = max(r[2] for r in w.records if r[2] is not None)
        t0 = time.time()
        os.kill(procs[leader].pid, sig)
        deadline = t0 + WATCH_S
        recovered = None
        while time.time() < deadline and recovered is None:
            time.sleep(0.05)
            # The first write the new leader committed (a newer epoch in its zxid).
            ok = [r for r in list(w.records) if r[2] is not None and r[2] > epoch]
            if ok:
                recovered = ok[0][1] - t0
        time.sleep(2)
        w.stop.set()
        w.join(10)
        after = [r for r in w.records if r[1] >= t0]
        until = t0 + (recovered if recovered is not None else WATCH_S)
        failed = sum(1 for r in after if r[2] is None and r[0] <= until)
        hang = max((r[1] - max(r[0], t0) for r in after), default=0.0)
        return recovered if recovered is not None else float("inf"), failed, hang
    finally:
        stop_ensemble(procs)

def median(xs):
    return statistics.median(xs)

results = {}
for fault, sig in FAULTS:
    for kind in ("zkr", "zookeeper"):
        runs = []
        for run in range(ROUNDS):
            runs.append(measure(kind, fault, sig, f"{fault.replace(' ', '')}-{run}"))
            r = runs[-1]
            print(f"  {kind:9} {fault:8} round {run + 1}: first write +{r[0]:.2f}s, "
                  f"{r[1]} failed, longest hang {r[2]:.2f}s", flush=True)
        results[(kind, fault)] = runs

print()
print(f"medians of {ROUNDS} rounds; client on a follower writing every 100 ms; "
      "tickTime=2000 syncLimit=5")
print(f"{'fault':9} {'server':10} {'first ok write':>15} {'failed':>7} {'longest hang':>13}")
for fault, _ in FAULTS:
    for kind in ("zkr", "zookeeper"):
        runs = results[(kind, fault)]
        rec, fail, hang = (median([r[i] for r in runs]) for i in range(3))
        print(f"{fault:9} {kind:10} {rec:>14.2f}s {fail:>7} {hang:>12.2f}s")
    z = [median([r[i] for r in results[("zkr", fault)]]) for i in range(3)]
    a = [median([r[i] for r in results[("zookeeper", fault)]]) for i in range(3)]
    ratio = lambda x, y: f"{x / y:.2f}" if y > 0 else ("1.00" if x == 0 else "inf")
    print(f"{fault:9} {'zkr/zk':10} {ratio(z[0], a[0]):>15} {ratio(z[1], a[1]):>7} "
          f"{ratio(z[2], a[2]):>13}")
PY
