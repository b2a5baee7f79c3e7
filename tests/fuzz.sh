#!/usr/bin/env bash
# The long, coverage-guided form of the decoder fuzzing (issue 13): runs each libFuzzer target in
# core/fuzz (client_frames, peer_message, txn, snapshot) under `cargo fuzz` for SECS seconds.
# CI runs the short form instead: the same checks (core/fuzz/checks.rs) over generated and
# damaged encodings, `cargo test -p zkr-core --test fuzz_targets`.
#   bash tests/fuzz.sh                          # 600 s per target
#   SECS=60 TARGETS="txn snapshot" bash tests/fuzz.sh
# cargo-fuzz is installed on first use; it needs a nightly-only sanitizer flag, which a stable
# toolchain accepts with RUSTC_BOOTSTRAP=1. The corpus grows in core/fuzz/corpus/TARGET (not
# committed); a crashing input is left in core/fuzz/artifacts/TARGET: add it to the
# `regressions()` of core/tests/fuzz_targets.rs once fixed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../core/fuzz"
SECS=${SECS:-600}
TARGETS=${TARGETS:-"client_frames peer_message txn snapshot"}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
for t in $TARGETS; do
  mkdir -p "corpus/$t"
  echo "== $t: $SECS s"
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$SECS" -print_final_stats=1 2>&1 |
    grep -E "^(stat::|==|#[0-9]+ +DONE|.*(panicked|SUMMARY|crash))" || true
  if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
    echo "$t: crashing inputs in core/fuzz/artifacts/$t" >&2
    exit 1
  fi
done
