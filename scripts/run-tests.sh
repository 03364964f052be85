#!/usr/bin/env bash
# Installs what is needed, builds (with the fault points compiled in; -O2
# as shipped, without debug info, which costs a third of the build), runs
# every test, and ends with one line "N passed, N failed" counting test
# cases of all. Beside the main suite, whose integration tests mostly wait
# on daemons, at idle CPU priority (they get only the CPU it leaves): the
# unit and glue tests are built with ThreadSanitizer ($TSAN_BUILD_DIR), and
# the fuzz targets with clang ($FUZZ_BUILD_DIR), which then run for a short
# bounded time each (tests/fuzz). The ThreadSanitizer tests run after the
# main suite. FUZZ=0 and TSAN=0 leave those steps out.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
export BUILD_DIR=${BUILD_DIR:-build-tests}
# The benchmarks are compiled too (bench/run.sh runs them): a change that breaks them fails here.
scripts/build.sh -Dfault_injection=true -Dtests=true -Dbenchmarks=true -Ddebug=false -Db_ndebug=false ||
  { echo "0 passed, 1 failed"; exit 1; }
idle() { chrt --idle 0 nice -n 19 "$@"; }
tsan_dir=${TSAN_BUILD_DIR:-build-tsan}
fuzz_dir=${FUZZ_BUILD_DIR:-build-fuzz}
tsan_built="$BUILD_DIR/tsan-build.ok"
rm -f "$tsan_built"
fuzz_log="$fuzz_dir/meson-logs/testlog.json"
rm -f "$fuzz_log"
# One job beside the main suite: the ThreadSanitizer build, then the fuzz
# build and run (one after the other, so that they do not share the idle CPU).
(
  if [ "${TSAN:-1}" != 0 ]; then
    tsan_started=$SECONDS
    { { [ -f "$tsan_dir/build.ninja" ] ||
        meson setup "$tsan_dir" -Db_sanitize=thread -Dbuildtype=debug -Dtests=true -Dfault_injection=false; } &&
      targets=$(python3 scripts/test-targets.py "$tsan_dir" unit glue) &&
      idle ninja -C "$tsan_dir" $targets &&
      echo "$((SECONDS - tsan_started))" > "$tsan_built"; } > "$BUILD_DIR/tsan-build.log" 2>&1
  fi
  if [ "${FUZZ:-1}" != 0 ]; then
    start=$SECONDS
    { [ -f "$fuzz_dir/build.ninja" ] || CC=clang-14 CXX=clang++-14 meson setup "$fuzz_dir" -Dfuzzing=true -Dtests=false; } &&
      idle meson compile -C "$fuzz_dir" -j2 || exit 1
    built=$SECONDS
    idle meson test -C "$fuzz_dir" --suite fuzz --print-errorlogs --num-processes 1
    fuzz_status=$?
    cat "$fuzz_dir"/tests/fuzz/*-work/summary.txt 2>/dev/null
    echo "== fuzz build $((built - start)) s, fuzz suite $((SECONDS - built)) s"
    exit $fuzz_status
  fi
) > "$BUILD_DIR/beside.log" 2>&1 &
beside=$!
results="$BUILD_DIR/test-results"
rm -rf "$results" && mkdir -p "$results"
GTEST_OUTPUT="xml:$(pwd)/$results/" meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 1 "$@"
status=$?

testlogs=()
wait "$beside"
beside_status=$?
if [ "${FUZZ:-1}" != 0 ]; then
  testlogs+=("$fuzz_log")  # missing when the fuzz build fails: counted as a failure
  echo "== fuzz targets ($fuzz_dir, clang-14, ASan+UBSan), run beside the main suite"
  grep -v '^ninja: \|^\[[0-9]*/[0-9]*\] ' "$BUILD_DIR/beside.log" | tail -n 60
  ((beside_status == 0)) || status=1
fi
if [ "${TSAN:-1}" != 0 ]; then
  tsan_log="$tsan_dir/meson-logs/testlog.json"
  rm -f "$tsan_log"
  testlogs+=("$tsan_log")  # missing when the build fails: counted as a failure
  echo "== unit and glue tests under ThreadSanitizer ($tsan_dir, -O0)"
  if [ -f "$tsan_built" ]; then
    started=$SECONDS
    # A report makes the test exit 66 (TSan's default exitcode): a failure.
    TSAN_OPTIONS="second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
      meson test -C "$tsan_dir" --no-rebuild --suite unit --suite glue --print-errorlogs --num-processes 1 || status=1
    echo "== ThreadSanitizer build $(cat "$tsan_built") s (beside the main suite), tests $((SECONDS - started)) s"
  else
    tail -n 40 "$BUILD_DIR/tsan-build.log"
    status=1
  fi
fi

python3 scripts/summarize-tests.py "$BUILD_DIR/meson-logs/testlog.json" "$results" "${testlogs[@]}"
summary=$?
((status == 0 && summary == 0)) || exit 1
