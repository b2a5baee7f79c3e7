#!/usr/bin/env bash
# The project's whole test suite, as CI runs it (README.md names this command).
# Installs what the end-to-end tests need (tests/setup.sh), builds everything, runs every crate's
# tests (unit, property, snapshot, scenario, end-to-end over loopback, kazoo, zkCli, tidy), then a
# simulator campaign and its determinism check.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR=never
start=$(date +%s)
step() { echo; echo "=== $* ($(( $(date +%s) - start ))s)"; }

step "setup (apt zookeeper for zkCli, kazoo venv)"
bash tests/setup.sh

step "build"
cargo build --workspace --all-targets --locked
# A zkr-server with the deliberate bugs and the disk fault hook (feature `bugs`), set aside for
# tests/tests/jepsen_run.rs and tests/tests/disk_faults.rs; then the plain one again, so
# target/debug/zkr-server has no bugs.
cargo build -p zkr-server --features bugs --locked
cp target/debug/zkr-server target/debug/zkr-server-bugs
cargo build -p zkr-server --locked

step "cargo test --workspace"
# ZKR_SCREENSHOTS: every violation kind's HTML report is rendered in headless Chromium and its
# screenshot kept in target/tmp/reports/violations (jepsen/tests/violations.rs).
ZKR_SCREENSHOTS=1 cargo test --workspace --locked --no-fail-fast 2>&1 | tee /tmp/zkr-cargo-test.log
status=${PIPESTATUS[0]}
if [ "$status" != 0 ]; then
  echo "cargo test failed ($status)"; exit "$status"
fi

step "assertion and comment density of zab, dispatch, prep, session, watch (STYLE.md 6, 10)"
python3 tests/density.py --self-test > /dev/null
python3 tests/density.py --check

step "simulator campaign (release): seeds ${SIM_SEEDS:-0..3000}, 1/3/5/7 servers, faults, history check"
cargo build -p zkr-sim --release --locked
./target/release/sim --seeds "${SIM_SEEDS:-0..3000}" --jobs 2 --quiet

step "simulator regression seeds (sim/regression-seeds.txt)"
./target/release/sim --seeds-file sim/regression-seeds.txt --jobs 2 --quiet

step "simulator campaign on ${SIM_RANDOM_SEEDS:-500} seeds from a random start (printed: replay that range)"
./target/release/sim --random-seeds "${SIM_RANDOM_SEEDS:-500}" --jobs 2 --quiet

step "jepsen test: 30 s on three real zkr servers under kill -9, SIGSTOP and partitions"
cargo build --release -p zkr-server -p zkr-jepsen --locked
jepsen_seed=${JEPSEN_SEED:-$(( $(date +%s) % 100000 ))}
echo "jepsen seed $jepsen_seed (replay: target/release/jepsen test --seed $jepsen_seed)"
./target/release/jepsen test --time 30 --seed "$jepsen_seed" --base-port 27100 \
  --out /tmp/zkr-jepsen-ci | tail -n 20

step "simulator tier 2 (madsim, the real zkr-server): seeds ${SHELL_SEEDS:-0..500}, determinism, bugs"
SHELL_SEEDS=${SHELL_SEEDS:-0..500} bash tests/sim-shell.sh

step "simulator determinism: one seed twice in one process, and once more in another"
./target/release/sim --seed 42 --determinism
a=$(./target/release/sim --seed 42 | grep -i 'trace hash')
b=$(./target/release/sim --seed 42 | grep -i 'trace hash')
echo "run 1: $a"; echo "run 2: $b"
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "nondeterministic trace for seed 42"; exit 1; }

step "done"
passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' /tmp/zkr-cargo-test.log | awk '{s+=$4} END {print s+0}')
echo "$passed passed, 0 failed"
