#!/usr/bin/env bash
# Issue 14: a follower rejoining, zkr beside a 3-server Apache ZooKeeper ensemble (Debian's
# package) in the same run. Not a test: figures only (the machine is shared and noisy; compare
# the ratios, which come from the same run).
#
# For each side a 3-server ensemble on loopback gets TREE sequential 100-byte znodes under one
# parent (through the leader, 16 sessions x 8 in flight). Then, for each N in MISSED (REPS
# times, the two sides interleaved: zkr N, ZooKeeper N, zkr next N, ...), one follower is
# stopped with SIGTERM, N more znodes and then a marker znode are created through the leader,
# and the follower is started again. Measured: from its start to the first new session on it
# whose `exists MARKER` finds the marker (serving, and caught up to the last write), and its
# RSS just before the stop and 3 s after that read. `srvr` must then call it a follower.
# For zkr it also prints where the time went, from the follower's log: local recovery
# (snapshot and txn log), recovered -> election decided, decided -> "synced; serving".
#   bash tests/rejoin-vs-zk-bench.sh                      # TREE=100000 MISSED="100 5000" REPS=2
#   TREE=1000000 MISSED="100 5000" REPS=1 bash tests/rejoin-vs-zk-bench.sh
#   SIDES=zkr BUILD=0 KEEP=1 bash tests/rejoin-vs-zk-bench.sh   # keeps the servers' directories
#   ZKR_B=/tmp/zkr-server.main SIDES="zkr zookeeper zkr-b" ...  # also another zkr build (A/B)
#   ZKR_BASE=29700 APACHE_BASE=29800   # client ports base+1..3, quorum +11.., election +21..
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ "${BUILD:-1}" = 0 ] || cargo build --release -q -p zkr-server -p zkr-tests --bin zkr-server --bin zkbench
# shellcheck source=tests/apache-classpath.sh
source "$ROOT/tests/apache-classpath.sh"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/zkr-rejoin.XXXXXX")"
if [ "${KEEP:-}" = 1 ]; then echo "servers' directories: $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
export CP WORK ROOT
python3 - <<'PY'
import os, re, signal, subprocess, time
from datetime import datetime

CP, WORK, ROOT = os.environ["CP"], os.environ["WORK"], os.environ["ROOT"]
TREE = int(os.environ.get("TREE", "100000"))
MISSED = [int(n) for n in os.environ.get("MISSED", "100 5000").split()]
REPS = int(os.environ.get("REPS", "2"))
SIDES = os.environ.get("SIDES", "zkr zookeeper").split()
BASE = {"zkr": int(os.environ.get("ZKR_BASE", "29700")),
        "zookeeper": int(os.environ.get("APACHE_BASE", "29800"))}
BASE["zkr-b"] = BASE["zkr"] + 300
BIN = {"zkr": os.environ.get("ZKR", os.path.join(ROOT, "target/release/zkr-server")),
       "zkr-b": os.environ.get("ZKR_B", "")}
ZKBENCH = os.path.join(ROOT, "target/release/zkbench")
NAMES = {"zkr": "zkr", "zookeeper": "ZooKeeper", "zkr-b": "zkr-b"}


class Ensemble:
    def __init__(self, kind):
        self.kind, self.base, self.procs, self.dirs = kind, BASE[kind], {}, {}
        servers = "".join(f"server.{i}=127.0.0.1:{self.base + 10 + i}:{self.base + 20 + i}\n"
                          for i in (1, 2, 3))
        for i in (1, 2, 3):
            d = os.path.join(WORK, f"{kind}-s{i}")
            os.makedirs(os.path.join(d, "data"))
            with open(os.path.join(d, "data", "myid"), "w") as f:
                f.write(str(i))
            with open(os.path.join(d, "zoo.cfg"), "w") as f:
                f.write(f"tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={d}/data\n"
                        f"clientPort={self.base + i}\nclientPortAddress=127.0.0.1\n"
                        f"maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=*\n"
                        f"{servers}")
            self.dirs[i] = d
            self.start(i)
        for i in (1, 2, 3):
            self.wait_serving(i, "/")
        self.leader = None
        for _ in range(200):
            modes = {i: self.mode(i) for i in (1, 2, 3)}
            leaders = [i for i, m in modes.items() if m == "leader"]
            if leaders and all(m in ("leader", "follower") for m in modes.values()):
                self.leader = leaders[0]
                break
            time.sleep(0.1)
        if self.leader is None:
            raise SystemExit(f"{kind}: no leader elected")
        self.follower = self.leader % 3 + 1

    def start(self, i):
        d = self.dirs[i]
        cfg = os.path.join(d, "zoo.cfg")
        if self.kind == "zookeeper":
            cmd = ["java", "-Xmx1g", "-cp", CP, "-Djava.awt.headless=true",
                   "-Dzookeeper.admin.enableServer=false",
                   "-Dorg.slf4j.simpleLogger.showDateTime=true",
                   "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
                   "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
        else:
            cmd = [BIN[self.kind], cfg]
        log = open(os.path.join(d, "server.log"), "a")
        self.procs[i] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)

    def stop(self, i, sig=signal.SIGTERM):
        p = self.procs.pop(i, None)
        if p is None:
            return
        try:
            p.send_signal(sig)
            p.wait(timeout=60)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def stop_all(self):
        for i in list(self.procs):
            self.stop(i, signal.SIGKILL)

    def addr(self, i):
        return f"127.0.0.1:{self.base + i}"

    def wait_serving(self, i, path):
        out = subprocess.run([ZKBENCH, "--addr", self.addr(i), "--wait-ready", "600000",
                              "--probe-path", path], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{self.kind} s{i}: not serving {path}: {out.stderr}")

    def mode(self, i):
        import socket
        try:
            with socket.create_connection(("127.0.0.1", self.base + i), timeout=5) as s:
                s.sendall(b"srvr")
                text = b""
                while chunk := s.recv(4096):
                    text += chunk
        except OSError:
            return None
        m = re.search(rb"Mode: (\w+)", text)
        return m.group(1).decode() if m else None

    def rss_mib(self, i):
        with open(f"/proc/{self.procs[i].pid}/status") as f:
            kb = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        return kb / 1024

    def create(self, n):
        clients = 16 if n >= 1600 else 1
        out = subprocess.run([ZKBENCH, "--addr", self.addr(self.leader), "--workload",
                              "seqcreate", "--clients", str(clients), "--window", "8",
                              "--ops", str(n // clients), "--label", self.kind],
                             capture_output=True, text=True, timeout=3600)
        if out.returncode != 0:
            raise SystemExit(f"{self.kind}: creating {n} znodes failed: {out.stderr}")
        return out.stdout.strip().splitlines()[-1]


def zkr_phases(log_path, start_wall):
    """From a zkr follower's log: (local recovery, recovered -> decided, decided -> synced), ms,
    for the run that began at `start_wall`, or None."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", open(log_path, errors="replace").read())
    stamps = {}
    for line in text.splitlines():
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        try:
            t = datetime.fromisoformat(parts[0].replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        if t < start_wall:
            continue
        for key, needle in (("rec", "recovered read_ms"), ("dec", "election decided"),
                            ("sync", "synced; serving")):
            if needle in line and key not in stamps:
                stamps[key] = t
        if "installing the leader's snapshot" in line:
            stamps.setdefault("snap", t)
    if not all(k in stamps for k in ("rec", "dec", "sync")):
        return None
    return ((stamps["rec"] - start_wall) * 1000, (stamps["dec"] - stamps["rec"]) * 1000,
            (stamps["sync"] - stamps["dec"]) * 1000, "SNAP" if "snap" in stamps else "DIFF")


ensembles = {}
results = {}
try:
    for kind in SIDES:
        t0 = time.time()
        ensembles[kind] = e = Ensemble(kind)
        line = e.create(TREE)
        print(f"{NAMES[kind]}: {TREE} znodes in {time.time() - t0:.1f} s (with the start); "
              f"leader s{e.leader}, follower s{e.follower} restarts; {line.split('ops/s')[0].split()[-1]} creates/s",
              flush=True)
        time.sleep(3)
    round_no = 0
    for rep in range(REPS):
        for n in MISSED:
            for kind in SIDES:
                e = ensembles[kind]
                round_no += 1
                f = e.follower
                rss_before = e.rss_mib(f)
                e.stop(f)
                e.create(n)
                marker = f"/rejoin-{round_no}"
                subprocess.run([ZKBENCH, "--addr", e.addr(e.leader), "--create-path", marker],
                               check=True, capture_output=True)
                wall = time.time()
                t0 = time.monotonic()
                e.start(f)
                e.wait_serving(f, marker)
                took = (time.monotonic() - t0) * 1000
                mode = e.mode(f)
                time.sleep(3)
                rss_after = e.rss_mib(f)
                phases = ""
                if kind != "zookeeper":
                    ph = zkr_phases(os.path.join(e.dirs[f], "server.log"), wall)
                    if ph:
                        phases = (f"; {ph[3]}: recovery {ph[0]:.0f} ms, to election decided "
                                  f"{ph[1]:.0f} ms, to synced {ph[2]:.0f} ms")
                print(f"  missed {n:>6}: {NAMES[kind]:<9} serving the last write after "
                      f"{took:6.0f} ms (srvr: {mode}); RSS {rss_before:5.0f} -> "
                      f"{rss_after:5.0f} MiB{phases}", flush=True)
                if mode != "follower":
                    raise SystemExit(f"{kind} s{f} is {mode} after the rejoin, not a follower")
                results.setdefault((n, kind), []).append((took, rss_before, rss_after))
finally:
    for e in ensembles.values():
        e.stop_all()


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


if len(SIDES) >= 2:
    # Each other side against ZooKeeper when it ran, else against the second side.
    B = "zookeeper" if "zookeeper" in SIDES else SIDES[1]
    nb = NAMES[B]
    load = os.getloadavg()
    print()
    print(f"{TREE} znodes, medians of {REPS}; {datetime.utcnow():%Y-%m-%d %H:%M} UTC, load "
          f"average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(f"| missed | side | start -> serving the last write | {nb} | ratio | RSS before -> "
          f"after | {nb} RSS before -> after |")
    print("|---|---|---|---|---|---|---|")
    for n in MISSED:
        b = [median([r[k] for r in results[(n, B)]]) for k in range(3)]
        for A in SIDES:
            if A == B:
                continue
            a = [median([r[k] for r in results[(n, A)]]) for k in range(3)]
            print(f"| {n:,} | {NAMES[A]} | {a[0]:,.0f} ms | {b[0]:,.0f} ms | {a[0] / b[0]:.2f}x "
                  f"| {a[1]:,.0f} -> {a[2]:,.0f} MiB | {b[1]:,.0f} -> {b[2]:,.0f} MiB |")
PY
