#!/usr/bin/env bash
# Installs what is needed, builds what the demo runs (the agent, armdockctl
# and one failing test engine, not the whole test suite), and runs the demo:
# one upgrade that succeeds and one that rolls back, driven by armdockctl,
# against a sandboxed systemd and a real dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export BUILD_DIR=${BUILD_DIR:-build}
[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR" -Dtests=true
ninja -C "$BUILD_DIR" daemon/armdock-agent cli/armdockctl tests/integration/engine_exits
exec scripts/demo.sh "$BUILD_DIR"
