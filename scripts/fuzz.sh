#!/usr/bin/env bash
# Runs every fuzz target of tests/fuzz for SECONDS each (default 300), one
# after the other, on its committed seeds, and prints per target the
# executions, coverage (libFuzzer's cov: edges, ft: features) and the new
# inputs found. A crash, leak or sanitizer report stops it with exit 1; the
# input is kept under $FUZZ_BUILD_DIR/tests/fuzz/<target>-long/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
fuzz_dir=${FUZZ_BUILD_DIR:-build-fuzz}
if [ ! -f "$fuzz_dir/build.ninja" ]; then
  CC=clang-14 CXX=clang++-14 meson setup "$fuzz_dir" -Dfuzzing=true -Dtests=false
fi
meson compile -C "$fuzz_dir" -j2
targets=("$@")
((${#targets[@]})) || targets=(fuzz_config fuzz_elf_check fuzz_docker_json fuzz_http_answer)
failed=0
summaries=()
for target in "${targets[@]}"; do
  work="$fuzz_dir/tests/fuzz/$target-long"
  echo "== $target for $seconds s"
  if tests/fuzz/run-fuzz-target.sh "$fuzz_dir/tests/fuzz/$target" "tests/fuzz/corpus/$target" "$work" "$seconds"; then
    summaries+=("$(cat "$work/summary.txt")")
  else
    summaries+=("$target: FAILED, see $work/")
    failed=1
  fi
done
echo "== summary"
printf '%s\n' "${summaries[@]}"
exit "$failed"
