#!/usr/bin/env bash
# The benchmarks, in one command: installs what is needed, builds the agent
# and bench/ into build-bench (or $BUILD_DIR) without fault points, runs every
# benchmark (or those named: downtime startup footprint dbus staging fleet) and
# prints the summary table at the end. Not part of `meson test` or CI.
#
# Repetitions (defaults keep the whole run under ~10 minutes):
#   ARMDOCK_BENCH_ROUNDS=5            downtime A B C rounds; D-Bus rounds
#   ARMDOCK_BENCH_STARTS=10           start-to-READY rounds
#   ARMDOCK_BENCH_IDLE_SEC=60         idle time of the footprint benchmark
#   ARMDOCK_BENCH_STATUS_CALLS=10000  status calls between footprint readings
#   ARMDOCK_BENCH_DBUS_CALLS=2000     calls per D-Bus latency batch
#   ARMDOCK_BENCH_STAGING_ROUNDS=10   staging rounds
#   ARMDOCK_BENCH_FLEET_ROUNDS=3      fleet rounds (a loop and two rollouts each)
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${ARMDOCK_BENCH_SKIP_DEPS:-0}" != 1 ]; then
  scripts/install-deps.sh || exit 1
fi
build=${BUILD_DIR:-build-bench}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Dfault_injection=false -Dtests=true -Dbenchmarks=true || exit 1
else
  meson setup --reconfigure "$build" -Dfault_injection=false -Dtests=true -Dbenchmarks=true || exit 1
fi
ninja -C "$build" benchmarks || exit 1

all=(downtime startup footprint dbus staging fleet)
(($#)) && all=("$@")
summary=$(mktemp /tmp/armdock-bench-summary.XXXXXX)
trap 'rm -f "$summary"' EXIT
export ARMDOCK_BENCH_SUMMARY=$summary
export ARMDOCK_AGENT_BINARY=$PWD/$build/daemon/armdock-agent
export ARMDOCK_GUARD_DROPIN=$PWD/units/docker.service.d/armdock-guard.conf
export ARMDOCK_ENGINES_DIR=$PWD/$build/tests/integration
export ARMDOCKCTL_BINARY=$PWD/$build/cli/armdockctl
export ARMDOCK_ANSIBLE_DIR=$PWD/ansible
# The footprint benchmark also measures the x86-64 static agent when
# packaging/build-static.sh has built one.
static_out=${ARMDOCK_STATIC_OUT:-build-static}
[[ $static_out == /* ]] || static_out=$PWD/$static_out
static_agent=$static_out/x86_64/daemon/armdock-agent
if [ -z "${ARMDOCK_BENCH_STATIC_AGENT:-}" ] && [ -x "$static_agent" ]; then
  export ARMDOCK_BENCH_STATIC_AGENT=$static_agent
fi
failed=()
start=$(date +%s)
for b in "${all[@]}"; do
  echo "==== bench_$b ===="
  if ! "$build/bench/bench_$b" | grep -v '^SUMMARY'; then
    failed+=("$b")
  fi
  echo
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "==== summary ($(date -u +%Y-%m-%d), $cpu, $(nproc) CPUs, $(uname -r), $(($(date +%s) - start)) s) ===="
echo
echo "| Benchmark | Metric | Agent | Reference | Ratio | Goal | Result |"
echo "|---|---|---|---|---|---|---|"
while IFS=$'\t' read -r bench metric agent ref ratio goal result; do
  echo "| $bench | $metric | $agent | $ref | $ratio | $goal | $result |"
done <"$summary"
if ((${#failed[@]})); then
  echo
  echo "benchmarks that did not finish: ${failed[*]}"
  exit 1
fi
