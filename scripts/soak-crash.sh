#!/usr/bin/env bash
# Soak test of crash safety: SIGKILLs the agent at random instants of whole
# upgrades, many times on one sandbox (tests/integration/test_crash_recovery.cpp,
# KillAtRandomInstants), and optionally repeats the kill at every fault point.
#
#   scripts/soak-crash.sh [RUNS]          # default 200 random kills
#
# Environment:
#   ARMDOCK_CRASH_RUNS  random kills per round (overridden by RUNS); default 200
#   SOAK_ROUNDS         how many times to run the whole test (fresh sandbox each); default 1
#   SOAK_FAULT_POINTS=1 also run KillAtEveryFaultPoint each round
#   ARMDOCK_CRASH_SEED  fix the random delays (printed by each run) to repeat one
#   BUILD_DIR           meson build dir with -Dfault_injection=true; default build-crash
# Needs root (the sandbox uses a mount namespace and cgroups) and docker.io.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-crash}
export ARMDOCK_CRASH_RUNS=${1:-${ARMDOCK_CRASH_RUNS:-200}}
rounds=${SOAK_ROUNDS:-1}

if [[ ! -d $BUILD_DIR ]]; then
  meson setup "$BUILD_DIR" -Dfault_injection=true -Dtests=true
fi
ninja -C "$BUILD_DIR" daemon/armdock-agent tests/integration/test_crash_recovery tests/integration/engine_exits

export ARMDOCK_AGENT_BINARY=$PWD/$BUILD_DIR/daemon/armdock-agent
export ARMDOCK_ENGINES_DIR=$PWD/$BUILD_DIR/tests/integration
export ARMDOCK_GUARD_DROPIN=$PWD/units/docker.service.d/armdock-guard.conf
filter='*KillAtRandomInstants*'
[[ ${SOAK_FAULT_POINTS:-0} == 1 ]] && filter='*KillAtRandomInstants*:*KillAtEveryFaultPoint*'

failed=0
for ((round = 1; round <= rounds; round++)); do
  echo "== soak round $round of $rounds: $ARMDOCK_CRASH_RUNS random kills"
  if ! "$BUILD_DIR/tests/integration/test_crash_recovery" --gtest_filter="$filter"; then
    failed=$((failed + 1))
  fi
done
echo "soak: $((rounds - failed)) of $rounds rounds passed ($ARMDOCK_CRASH_RUNS random kills each)"
((failed == 0))
