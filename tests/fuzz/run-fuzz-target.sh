#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on its committed seed corpus.
#   run-fuzz-target.sh BINARY SEED_DIR WORK_DIR SECONDS
# New inputs go to WORK_DIR/corpus (the committed seeds are only read), a
# crash, leak or sanitizer report is saved under WORK_DIR/ and fails the run.
# Ends with one line: "NAME: N executions, cov C, ft F, corpus K inputs".
set -uo pipefail
binary=$1 seeds=$2 work=$3 seconds=$4
name=$(basename "$binary")
[ -d "$seeds" ] || { echo "$name: seed corpus $seeds is missing" >&2; exit 1; }
rm -rf "$work/corpus" "$work/summary.txt" && mkdir -p "$work/corpus"
log="$work/fuzz.log"
# A leak is a finding; UBSan already aborts through -fno-sanitize-recover.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work/corpus" "$seeds" >"$log" 2>&1
status=$?
if ((status != 0)); then
  tail -n 60 "$log"
  echo "$name: FAILED (exit $status); the input is in $work/ (crash-*, leak-*, timeout-*, oom-*), the log in $log"
  exit "$status"
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
corpus=$(find "$work/corpus" -type f | wc -l)
summary="$name: ${runs:-?} executions in ${seconds} s, cov ${cov:-?}, ft ${ft:-?}, ${corpus} new inputs (seeds: $(find "$seeds" -type f | wc -l))"
echo "$summary" | tee "$work/summary.txt"
