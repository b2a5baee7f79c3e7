#!/usr/bin/env bash
# Throughput of zkr against Apache ZooKeeper on this machine, in the same run (issue 14's matrix).
# Not a test: figures only. Machines here are shared and noisy, so compare ratios, not absolutes;
# repetitions are interleaved (zkr, ZooKeeper, zkr, ...) so drift hits both sides alike.
#
#   bash tests/bench.sh                                # the whole matrix, 2 repetitions
#   REPS=3 OPS=4000 WARMUP=1000 bash tests/bench.sh   # OPS, WARMUP: requests per client
#   MODES=standalone WORKLOADS="set get" bash tests/bench.sh
#   ZKR_BASE=24100 APACHE_BASE=24200 bash tests/bench.sh   # ports base+1 .. base+23
#   ZKR=/tmp/zkr-server.main bash tests/bench.sh      # another zkr binary
#   ZKR_B=/tmp/zkr-server.main SIDES="zkr zkr-b" bash tests/bench.sh  # A/B of two zkr builds
#   ZKBENCH=/tmp/zkbench.old bash tests/bench.sh      # another load generator
#   THREADS=1 bash tests/bench.sh                     # also zkr's CPU per op by thread name,
#                                                     # and its threads' switches off the CPU
#   KEEP=1 BUILD=0 SLOW_MS=20 bash tests/bench.sh     # keep logs; no build; print slow replies
#   EXTRA_CFG='forceSync=no' bash tests/bench.sh       # more zoo.cfg lines (';'-separated)
#   TMPDIR=/dev/shm bash tests/bench.sh               # data dirs on tmpfs: syncs cost nothing, so
#                                                     # only hops and CPU are compared
#
# For each mode (standalone; a 3-server ensemble with the clients spread over its members) and
# workload (set, create, seqcreate, get, mixed: see tests/src/bin/zkbench.rs) it prints ops/s and
# p99 of each side, the ratios zkr / ZooKeeper, and each side's server CPU per op (user + system
# time of every server process over the run, divided by the ops: what decides throughput when
# the servers and the load generator share two cores), and the load generator's own CPU per op
# ("client CPU": on these 2 cores it is taken from the server). zoo.cfg is the same for both
# (fsync on).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ "${BUILD:-1}" = 0 ] || cargo build --release -q -p zkr-server -p zkr-tests --bin zkr-server --bin zkbench
# shellcheck source=tests/apache-classpath.sh
source "$ROOT/tests/apache-classpath.sh"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/zkr-bench.XXXXXX")"
# Python runs as a child (not exec'd) so this shell's EXIT trap removes WORK. KEEP=1 keeps the servers' directories (their logs: slow driver turns, slow syncs).
if [ "${KEEP:-}" = 1 ]; then echo "servers' directories: $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
export CP WORK ROOT
python3 - <<'PY'
import os, re, resource, shutil, signal, socket, subprocess, time

CP, WORK, ROOT = os.environ["CP"], os.environ["WORK"], os.environ["ROOT"]
REPS = int(os.environ.get("REPS", "2"))
OPS = int(os.environ.get("OPS", "3000"))          # per client
WARMUP = int(os.environ.get("WARMUP", str(max(OPS // 4, 1))))  # per client, not measured (JIT)
CLIENTS = int(os.environ.get("CLIENTS", "64"))
WINDOW = int(os.environ.get("WINDOW", "8"))
MODES = os.environ.get("MODES", "standalone ensemble").split()
WORKLOADS = os.environ.get("WORKLOADS", "set create seqcreate get mixed").split()
# Client ports base+1..3, quorum base+11.., election base+21.. (ZKR_BASE, APACHE_BASE move them).
BASE = {"zkr": int(os.environ.get("ZKR_BASE", "26100")),
        "zookeeper": int(os.environ.get("APACHE_BASE", "26200"))}
ZKR = os.environ.get("ZKR", os.path.join(ROOT, "target/release/zkr-server"))
ZKR_B = os.environ.get("ZKR_B", "")   # a second zkr build, run as side "zkr-b" on zkr's ports
SIDES = os.environ.get("SIDES", "zkr zookeeper").split()
BASE["zkr-b"] = BASE["zkr"]
ZKBENCH = os.environ.get("ZKBENCH", os.path.join(ROOT, "target/release/zkbench"))
THREADS = os.environ.get("THREADS", "") == "1"
SLOW_MS = os.environ.get("SLOW_MS", "")
# More zoo.cfg lines for both sides, e.g. EXTRA_CFG='forceSync=no' (what fsync adds to the tail).
EXTRA_CFG = "".join(line.strip() + "\n" for line in os.environ.get("EXTRA_CFG", "").split(";")
                    if line.strip())
TICKS = os.sysconf("SC_CLK_TCK")

def start(kind, mode, run):
    base, procs = BASE[kind], []
    binary = {"zkr": ZKR, "zkr-b": ZKR_B}.get(kind)
    members = (1, 2, 3) if mode == "ensemble" else (1,)
    servers = "".join(f"server.{i}=127.0.0.1:{base + 10 + i}:{base + 20 + i}\n" for i in members)
    if mode == "standalone":
        servers = ""
    for i in members:
        d = os.path.join(WORK, f"{kind}-{mode}-{run}-s{i}")
        os.makedirs(os.path.join(d, "data"))
        with open(os.path.join(d, "data", "myid"), "w") as f:
            f.write(str(i))
        cfg = os.path.join(d, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={d}/data\n"
                    f"clientPort={base + i}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n"
                    f"admin.enableServer=false\n4lw.commands.whitelist=*\n{servers}{EXTRA_CFG}")
        if binary:
            cmd = [binary, cfg]
        else:
            cmd = ["java", "-Xmx1g", "-cp", CP, "-Djava.awt.headless=true",
                   "-Dzookeeper.admin.enableServer=false",
                   "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
        log = open(os.path.join(d, "server.log"), "w")
        procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      start_new_session=True))
    ports = [base + i for i in members]
    for port in ports:
        ready = subprocess.run([ZKBENCH, "--addr", f"127.0.0.1:{port}", "--wait-ready", "60000"],
                               capture_output=True, text=True)
        if ready.returncode != 0:
            stop(procs)
            raise SystemExit(f"{kind} {mode} on {port} did not start: {ready.stderr}")
    return ports, procs

def stop(procs):
    for p in procs:
        try:
            p.kill()
        except ProcessLookupError:
            pass
        p.wait()

def cpu_seconds(procs):
    total = 0
    for p in procs:
        with open(f"/proc/{p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])   # utime, stime (fields 14, 15)
    return total / TICKS

def thread_cpu(procs):
    """CPU seconds of every thread of `procs`, summed by thread name."""
    by_name = {}
    for p in procs:
        for tid in os.listdir(f"/proc/{p.pid}/task"):
            try:
                with open(f"/proc/{p.pid}/task/{tid}/stat") as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            name = text[text.index("(") + 1:text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            by_name[name] = by_name.get(name, 0) + (int(fields[11]) + int(fields[12])) / TICKS
    return by_name

def switches(procs):
    """Times the threads of `procs` left the CPU (voluntary, all), from /proc."""
    vol = total = 0
    for p in procs:
        for tid in os.listdir(f"/proc/{p.pid}/task"):
            try:
                with open(f"/proc/{p.pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            vol += int(line.split()[1])
                            total += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches"):
                            total += int(line.split()[1])
            except FileNotFoundError:
                continue
    return vol, total

def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

def bench(kind, mode, workload, run):
    ports, procs = start(kind, mode, run)
    try:
        addrs = [f"127.0.0.1:{p}" for p in ports]
        def load(ops):
            cmd = [ZKBENCH, "--addr", addrs[0], "--workload", workload, "--clients",
                   str(CLIENTS), "--window", str(WINDOW), "--ops", str(ops), "--label", kind]
            if len(addrs) > 1:
                cmd += ["--also", ",".join(addrs[1:])]
            if SLOW_MS:
                cmd += ["--slow-ms", SLOW_MS]
            return subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        load(WARMUP)          # the JVM's JIT (and both sides' caches) warm up first
        before, client_before = cpu_seconds(procs), children_cpu()
        threads_before = thread_cpu(procs) if THREADS and kind != "zookeeper" else {}
        switches_before = switches(procs) if threads_before else (0, 0)
        out = load(OPS)
        cpu = cpu_seconds(procs) - before
        client_cpu = children_cpu() - client_before   # zkbench, reaped by subprocess.run
        threads = {}
        if threads_before:
            after = thread_cpu(procs)
            threads = {n: after[n] - threads_before.get(n, 0) for n in after}
            switched = [a - b for a, b in zip(switches(procs), switches_before)]
        line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr.strip()
        if SLOW_MS and out.stderr.strip():
            print("      " + out.stderr.strip().replace("\n", "\n      "), flush=True)
        m = re.search(r"ops=(\d+)\s+(\d+) ops/s.*p99=\s*(\d+)", line)
        if not m:
            raise SystemExit(f"{kind} {mode} {workload}: zkbench said {line[-400:]!r}")
        ops, rate, p99 = int(m.group(1)), float(m.group(2)), int(m.group(3))
        print(f"  {mode:<10} {workload:<9} {kind:<9} {rate:>9.0f} ops/s  p99 {p99/1000:>7.1f} ms"
              f"  server CPU {cpu * 1e6 / ops:>6.1f} µs/op  client CPU"
              f" {client_cpu * 1e6 / ops:>5.1f} µs/op", flush=True)
        if threads:
            busy = sorted(threads.items(), key=lambda kv: -kv[1])
            print("      by thread (µs/op): " + ", ".join(
                f"{n} {t * 1e6 / ops:.1f}" for n, t in busy if t > 0), flush=True)
            print(f"      thread switches per op: {switched[1] / ops:.1f}"
                  f" ({switched[0] / ops:.1f} voluntary)", flush=True)
        return rate, p99, cpu * 1e6 / ops, client_cpu * 1e6 / ops
    finally:
        stop(procs)
        if os.environ.get("KEEP") != "1":   # a full matrix leaves ~6 GB of logs and snapshots
            for d in os.listdir(WORK):
                if d.startswith(f"{kind}-{mode}-{run}-"):
                    shutil.rmtree(os.path.join(WORK, d), ignore_errors=True)

results = {}
run = 0
for mode in MODES:
    for workload in WORKLOADS:
        for rep in range(REPS):
            for kind in SIDES:
                run += 1
                results.setdefault((mode, workload, kind), []).append(bench(kind, mode, workload, run))

def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2

print()
print(f"medians of {REPS} interleaved runs; {CLIENTS} sessions x {WINDOW} in flight, "
      f"{OPS} ops each, 100-byte data, fsync on")
A, B = (SIDES + SIDES)[:2]
NAMES = {"zkr": "zkr", "zookeeper": "ZooKeeper", "zkr-b": "zkr-b"}
na, nb = NAMES[A], NAMES[B]
print(f"| mode | workload | {na} ops/s | {nb} ops/s | ops/s ratio | p99 ratio (lower is better) "
      f"| {na} CPU µs/op | {nb} CPU µs/op | client CPU µs/op ({na} / {nb}) |")
print("|---|---|---|---|---|---|---|---|---|")
for mode in MODES:
    for workload in WORKLOADS:
        z = [median([r[i] for r in results[(mode, workload, A)]]) for i in range(4)]
        a = [median([r[i] for r in results[(mode, workload, B)]]) for i in range(4)]
        print(f"| {mode} | {workload} | {z[0]:.0f} | {a[0]:.0f} | {z[0]/a[0]:.2f}x | "
              f"{z[1]/a[1]:.2f} | {z[2]:.1f} | {a[2]:.1f} | {z[3]:.1f} / {a[3]:.1f} |")
PY
