#!/usr/bin/env bash
# Tier 2 of the simulator: the real zkr-server under madsim (sim/src/shell). Builds the
# `sim-shell` binary with `--cfg madsim` into target/sim (its own target directory: the cfg
# changes every crate that uses tokio), then:
#   1. a campaign over SHELL_SEEDS (default 0..200) with 3- and 5-server ensembles, then the seeds
#      of sim/shell-regression-seeds.txt (each once failed);
#   2. determinism: one seed twice in one process and once more in another, same trace hash; a
#      campaign's seeds have the trace hashes they have run alone;
#      --log prints server lines, changes nothing, and prints the same twice;
#   3. memory: the campaign fails if a seed's world outlives it; --bug leak-nodes must be reported;
#   4. sensitivity: with a deliberate core or storage bug switched on, some seed of a bounded range must
#      fail (the same seeds pass without it, in step 1), session-timer and fail-over bugs included,
#      and the storage bugs only a power loss at a named storage point (the `point` fault) finds.
# Usage: bash tests/sim-shell.sh [--build-only]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR=never
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim \
  cargo build --release --locked -p zkr-sim --bin sim-shell
bin=target/sim/release/sim-shell
[ "${1:-}" = "--build-only" ] && exit 0

# The harness's own unit tests (sim/src/shell is compiled only under madsim, so a plain
# `cargo test` never runs them): the session-timer budget, fault marks, disk-fault excuses.
echo "--- tier 2 harness unit tests (zkr-sim --lib under madsim)"
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim \
  cargo test --release --locked -p zkr-sim --lib -- --quiet

seeds=${SHELL_SEEDS:-0..200}
echo "--- tier 2 campaign: seeds $seeds"
"$bin" --seeds "$seeds" --jobs "${SHELL_JOBS:-2}"

echo "--- tier 2 regression seeds (sim/shell-regression-seeds.txt)"
grep -v '^#' sim/shell-regression-seeds.txt | while read -r seed _; do
  [ -n "$seed" ] || continue
  "$bin" --seed "$seed" | tail -n 1
done

# A leader stopped by a disk fault (its txn log failed) must be replaced at once, as after a
# kill: its followers' reconnects fail and report it lost. Seed 7426: s3 stops at 1.33 s with
# ENOSPC and restarts at 5.31 s; the quorum connections to it connected but could not carry our
# id, which was retried every 3 ms and never reported, and the new leader came only with s3's
# restart, 4.0 s after the fault (docs/TESTING.md, "Fail-over findings"). Simulated time.
echo "--- tier 2 fail-over after a leader's disk fault (seed 7426): under 1 s"
first=$("$bin" --seeds 7426..7427 --failover-seeds | sed -nE 's/^seed 7426: failover ([^ ]+).*/\1/p')
took=${first%@*}
echo "seed 7426: leader fault to the next established leader ${took:-none} s"
awk -v t="${took:-99}" 'BEGIN { exit !(t < 1.0) }' || {
  echo "tier 2: a leader stopped by a disk fault was not replaced within 1 s"; exit 1; }
# Each fail-over is printed as TOOK@AT, AT the fault's time, to find the same fault in another
# binary's run (docs/TESTING.md, "Fail-overs seed by seed"): here the disk fault's start mark
# in the seed's history (1.326 s).
at=${first#*@}
hist=$(mktemp)
"$bin" --seed 7426 --history "$hist" > /dev/null
mark_us=$(grep -m1 '"type":"nemesis"' "$hist" | sed -nE 's/.*"time":([0-9]+).*/\1/p')
rm -f "$hist"
echo "seed 7426: fault at ${at:-none} s, history's first fault mark at ${mark_us:-none} us"
awk -v at="${at:-x}" -v us="${mark_us:--1}" \
  'BEGIN { d = at * 1e6 - us; exit !(at ~ /^[0-9.]+$/ && d < 1000 && d > -1000) }' || {
  echo "tier 2: --failover-seeds printed a fault time other than the fault's"; exit 1; }

echo "--- tier 2 determinism (seed 7)"
"$bin" --seed 7 --determinism | tail -n 3
a=$("$bin" --seed 7 | grep -o 'trace hash [0-9a-f]*')
b=$("$bin" --seed 7 | grep -o 'trace hash [0-9a-f]*')
echo "process 1: $a"; echo "process 2: $b"
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "tier 2 is nondeterministic across processes"; exit 1; }

# `--log FILTER` prints the servers' tracing lines to stderr (docs/TESTING.md, "Logs of one
# tier 2 seed"): some from a server node, every line headed by the simulated time; the seed's stdout
# (trace hash, verdict) is that of a run without it, and a second process prints the same log
# byte for byte (no wall clock, no process-wide counter in it).
echo "--- tier 2 logs: seed 7 with --log debug"
logs=$(mktemp -d)
"$bin" --seed 7 > "$logs/plain"
"$bin" --seed 7 --log debug > "$logs/out1" 2> "$logs/log1"
"$bin" --seed 7 --log debug > "$logs/out2" 2> "$logs/log2"
diff "$logs/plain" "$logs/out1" || {
  echo "tier 2: --log changed seed 7's trace or verdict"; exit 1; }
server_lines=$(grep -cE '^ *[0-9]+\.[0-9]{6}s s[0-9] [A-Z]+ zkr_server' "$logs/log1" || true)
echo "seed 7: $(wc -l < "$logs/log1") log lines, $server_lines from servers (zkr_server)"
[ "$server_lines" -gt 0 ] || {
  head -n 5 "$logs/log1"; echo "tier 2: --log printed no server line"; exit 1; }
# (`- -`: a line from outside the runtime, as madsim's first, made while the runtime is built.)
head='^ *([0-9]+\.[0-9]{6}s [^ ]+|- -) (TRACE|DEBUG|INFO|WARN|ERROR) '
if grep -vqE "$head" "$logs/log1"; then
  grep -vE "$head" "$logs/log1" | head -n 3
  echo "tier 2: a --log line is not headed by the simulated time and a level"; exit 1
fi
cmp "$logs/log1" "$logs/log2" || {
  echo "tier 2: --log printed different logs in two processes"; exit 1; }
if "$bin" --seeds 0..1 --log info > /dev/null 2>&1; then
  echo "tier 2: --log ran a campaign (its seeds' lines would interleave)"; exit 1
fi
rm -r "$logs"

# A seed must not depend on the seeds run before it in the process (each runs on a fresh thread;
# tokio's per-thread RNG, seeded from a process-wide counter, once picked the wake order of
# `watch` receivers: see server/src/signal.rs). A campaign's per-seed hashes, with 1 and 2 jobs,
# must equal those of each seed run alone.
echo "--- tier 2 determinism: campaign seeds 200..212 replay alone (--jobs 1 and 2)"
replay=$(mktemp -d)
for seed in $(seq 200 211); do
  "$bin" --seed "$seed" | sed -nE 's/^(seed [0-9]+): .*(trace hash [0-9a-f]+).*/\1: \2/p'
done > "$replay/alone"
[ "$(wc -l < "$replay/alone")" = 12 ] || { cat "$replay/alone"; echo "expected 12 hashes"; exit 1; }
for jobs in 1 2; do
  "$bin" --seeds 200..212 --jobs "$jobs" --hashes | grep -E '^seed [0-9]+: trace hash' \
    > "$replay/jobs$jobs"
  diff "$replay/alone" "$replay/jobs$jobs" || {
    echo "tier 2: a seed's trace depends on the seeds run before it (--jobs $jobs)"; exit 1; }
done
echo "12 seeds: the same trace hash alone and in campaigns of 1 and 2 jobs"
rm -r "$replay"

# A campaign fails if some seed's world outlives it (its nodes' tasks kept by madsim: 3-5 MB a
# seed, unbounded over a long campaign); the deliberate harness bug leak-nodes must be reported.
echo "--- tier 2 memory: --bug leak-nodes over seeds 0..4 must be reported"
if "$bin" --seeds 0..4 --bug leak-nodes > /tmp/zkr-shell-leak.log 2>&1; then
  tail -n 5 /tmp/zkr-shell-leak.log; echo "tier 2 did not report --bug leak-nodes"; exit 1
fi
grep -m 1 '^LEAK' /tmp/zkr-shell-leak.log || { tail -n 5 /tmp/zkr-shell-leak.log; exit 1; }

# Each deliberate bug must make some seed of its range fail (exit 1 = violations found); with a
# third argument, some seed must fail that invariant (the check made for the bug, not another).
expect_caught() {
  local bug=$1 range=$2 invariant=${3:-}
  echo "--- tier 2 sensitivity: --bug $bug over seeds $range"
  if "$bin" --seeds "$range" --jobs "${SHELL_JOBS:-2}" --bug "$bug" > /tmp/zkr-shell-bug.log 2>&1; then
    tail -n 5 /tmp/zkr-shell-bug.log
    echo "tier 2 did not catch --bug $bug in seeds $range"; exit 1
  fi
  grep -m 3 -E 'FAILED seed' /tmp/zkr-shell-bug.log || true
  if [ -n "$invariant" ] && ! grep -qE "FAILED seed .*\"$invariant\"" /tmp/zkr-shell-bug.log; then
    echo "tier 2 caught --bug $bug in seeds $range, but never by $invariant"; exit 1
  fi
}
expect_caught reads-skip-queue 0..60
expect_caught ack-before-fsync 0..100
expect_caught commit-after-one-ack 0..60
expect_caught diff-instead-of-trunc 0..60
expect_caught durable-before-fsync 0..60
expect_caught epoch-in-place-no-fsync 0..60
expect_caught keep-past-torn-tail 0..300
# The point fault (power lost exactly at a named storage point, sim/src/shell/nemesis.rs POINTS)
# and the watcher's session_ids check (2026-12-05, branch wt-t2points): a TRUNC's cut left
# unsynced comes back behind the next file after a power loss at the first log fsync after the
# cut (digest: seeds 387, 480, 526 of 200..600; all of 380..530 pass without it); session ids
# taken from the recovered tree are handed out again (31 of seeds 0..100); a DIFF read from the
# log files one txn late (5 of 0..100: the learner refuses the hole). Not catchable in tier 2,
# and why: docs/TESTING.md, "Tier 2: the real server under madsim".
expect_caught trunc-without-fsync 380..530
expect_caught session-id-from-tree 0..60
expect_caught disk-diff-skips-one 0..100
# Session timers and fail-over (sim/src/shell/sessions.rs, World::check_failover): a leader
# that never expires (ephemerals), one that expires at half the timeout (expiry), survivors
# that ignore the dead leader's closed connections and wait out syncLimit (failover).
expect_caught skip-session-expiry 0..60
expect_caught expire-early 0..60
expect_caught ignore-peer-lost 0..60
# A leader that ignores the touches its learners report in their PINGREPLYs expires the busy
# clients of followers and observers after their timeout (follower_expiry; no other check sees
# it: 34 of seeds 0..60 fail, all by follower_expiry; tier 1 misses it).
expect_caught drop-learner-touches 0..60 follower_expiry
