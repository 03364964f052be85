#!/usr/bin/env bash
# Installs what is needed, builds (with the fault points compiled in), runs
# every test and ends with one line "N passed, N failed" counting test cases.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
export BUILD_DIR=${BUILD_DIR:-build-tests}
scripts/build.sh -Dfault_injection=true -Dtests=true || { echo "0 passed, 1 failed"; exit 1; }
results="$BUILD_DIR/test-results"
rm -rf "$results" && mkdir -p "$results"
GTEST_OUTPUT="xml:$(pwd)/$results/" meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 1 "$@"
status=$?
python3 scripts/summarize-tests.py "$BUILD_DIR/meson-logs/testlog.json" "$results"
summary=$?
((status == 0 && summary == 0)) || exit 1
