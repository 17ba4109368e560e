#!/usr/bin/env bash
# The whole test run: set-up, lint, unit + property + integration tests (in namespaces this
# run makes; needs root), and a short fuzz smoke of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"

# Fuzz smoke: every target for a few seconds on stable (-s none: no sanitizer needs nightly).
# Long runs: scripts/fuzz-long.sh MINUTES.
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
(
  cd fuzz
  # As scripts/fuzz-long.sh: large blocks stay in the heap between executions.
  export MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=67108864
  for t in $(cargo fuzz list); do
    echo "fuzz smoke: $t (${FUZZ_SECONDS}s)"
    # Start from the committed, minimized seeds (scripts/fuzz-long.sh); new finds go to a
    # scratch corpus so the seeds stay as committed.
    scratch="$(mktemp -d)"
    mkdir -p "seeds/$t"
    cargo fuzz run -s none "$t" "$scratch" "seeds/$t" -- -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 2>&1 | tail -n 3
    test "${PIPESTATUS[0]}" -eq 0
    rm -rf "$scratch"
  done
)
echo "fuzz smoke: all targets ran clean"
