#!/usr/bin/env bash
# Installs what is needed, builds (with the fault points compiled in), runs
# every test, then builds the fuzz targets with clang (a build dir of its own,
# $FUZZ_BUILD_DIR) and runs each for a short bounded time (tests/fuzz), and
# ends with one line "N passed, N failed" counting test cases of all.
# Between the two, the unit and glue tests run again built with
# ThreadSanitizer (a build dir of its own, $TSAN_BUILD_DIR; only their
# targets are built, under SCHED_IDLE while the main suite runs, whose
# integration tests mostly wait on daemons: the build gets only the CPU they
# leave). FUZZ=0 and TSAN=0 leave those steps out.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
export BUILD_DIR=${BUILD_DIR:-build-tests}
# The benchmarks are compiled too (bench/run.sh runs them): a change that breaks them fails here.
scripts/build.sh -Dfault_injection=true -Dtests=true -Dbenchmarks=true || { echo "0 passed, 1 failed"; exit 1; }
tsan_dir=${TSAN_BUILD_DIR:-build-tsan}
if [ "${TSAN:-1}" != 0 ]; then
  tsan_started=$SECONDS
  ( { [ -f "$tsan_dir/build.ninja" ] ||
      meson setup "$tsan_dir" -Db_sanitize=thread -Dbuildtype=debug -Dtests=true -Dfault_injection=false; } &&
    targets=$(python3 scripts/test-targets.py "$tsan_dir" unit glue) &&
    chrt --idle 0 nice -n 19 ninja -C "$tsan_dir" $targets ) > "$BUILD_DIR/tsan-build.log" 2>&1 &
  tsan_build=$!
fi
results="$BUILD_DIR/test-results"
rm -rf "$results" && mkdir -p "$results"
GTEST_OUTPUT="xml:$(pwd)/$results/" meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 1 "$@"
status=$?

testlogs=()
if [ "${TSAN:-1}" != 0 ]; then
  tsan_log="$tsan_dir/meson-logs/testlog.json"
  rm -f "$tsan_log"
  testlogs+=("$tsan_log")  # missing when the build fails: counted as a failure
  echo "== unit and glue tests under ThreadSanitizer ($tsan_dir, -O0)"
  if wait "$tsan_build"; then
    built=$SECONDS
    # A report makes the test exit 66 (TSan's default exitcode): a failure.
    TSAN_OPTIONS="second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
      meson test -C "$tsan_dir" --no-rebuild --suite unit --suite glue --print-errorlogs --num-processes 1 || status=1
    echo "== ThreadSanitizer build done $((built - tsan_started)) s after it began (beside the main suite), tests $((SECONDS - built)) s"
  else
    tail -n 40 "$BUILD_DIR/tsan-build.log"
    status=1
  fi
fi
if [ "${FUZZ:-1}" != 0 ]; then
  fuzz_dir=${FUZZ_BUILD_DIR:-build-fuzz}
  fuzz_log="$fuzz_dir/meson-logs/testlog.json"
  rm -f "$fuzz_log"
  testlogs+=("$fuzz_log")  # missing when the fuzz build fails: counted as a failure
  echo "== fuzz targets ($fuzz_dir, clang-14, ASan+UBSan)"
  start=$SECONDS
  if { [ -f "$fuzz_dir/build.ninja" ] || CC=clang-14 CXX=clang++-14 meson setup "$fuzz_dir" -Dfuzzing=true -Dtests=false; } &&
     meson compile -C "$fuzz_dir" -j2; then
    built=$SECONDS
    meson test -C "$fuzz_dir" --suite fuzz --print-errorlogs --num-processes 1 || status=1
    cat "$fuzz_dir"/tests/fuzz/*-work/summary.txt 2>/dev/null
    echo "== fuzz build $((built - start)) s, fuzz suite $((SECONDS - built)) s"
  else
    status=1
  fi
fi

python3 scripts/summarize-tests.py "$BUILD_DIR/meson-logs/testlog.json" "$results" "${testlogs[@]}"
summary=$?
((status == 0 && summary == 0)) || exit 1
