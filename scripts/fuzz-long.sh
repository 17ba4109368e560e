#!/usr/bin/env bash
# Long fuzzing: every cargo-fuzz target for MINUTES each (default 10), on a persistent corpus
# under fuzz/corpus/<target> seeded from the committed fuzz/seeds/<target>, then the corpus is
# minimized back into fuzz/seeds/<target> (commit those). Prints the executions of each target.
# FUZZ_RUNS=N also stops a target after N executions. Stable toolchain, no sanitizer (-s none).
# Usage: scripts/fuzz-long.sh [MINUTES] [TARGET…]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

minutes="${1:-10}"
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi
runs_opt=()
[[ -n "${FUZZ_RUNS:-}" ]] && runs_opt=(-runs="$FUZZ_RUNS")

# glibc gives large blocks back to the kernel on free and faults them in again on the next
# execution (a third of nat_frames' time): keep them in the heap instead (3x executions/s).
export MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=67108864

cargo fuzz build -s none >/dev/null
bin_dir="target/$(rustc -vV | sed -n 's/^host: //p')/release"
summary=()
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t" artifacts
  log="$(mktemp)"
  echo "fuzz-long: $t for ${minutes} min${FUZZ_RUNS:+ (at most $FUZZ_RUNS runs)}"
  set +e
  "$bin_dir/$t" "corpus/$t" "seeds/$t" -max_total_time=$((minutes * 60)) "${runs_opt[@]}" \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$t-" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if ((rc != 0)); then
    status=1
    tail -n 30 "$log"
    summary+=("$t: FAILED (exit $rc) after ${execs:-?} executions; see fuzz/artifacts/$t-*")
  else
    summary+=("$t: ${execs:-?} executions, no crash")
  fi
  rm -f "$log"
  # Minimize: the smallest set of inputs that keeps the coverage becomes the committed seeds.
  tmp="$(mktemp -d)"
  "$bin_dir/$t" -merge=1 "$tmp" "seeds/$t" "corpus/$t" >/dev/null 2>&1 || true
  if [[ -n "$(ls -A "$tmp")" ]]; then
    rm -rf "seeds/$t"
    mv "$tmp" "seeds/$t"
  else
    rm -rf "$tmp"
  fi
done
printf '%s\n' "${summary[@]}"
exit "$status"
