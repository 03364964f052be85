#!/usr/bin/env bash
# Installs what is needed, builds, and runs the demo: one upgrade that
# succeeds and one that rolls back, against a sandboxed systemd and a real dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export BUILD_DIR=${BUILD_DIR:-build}
scripts/build.sh
exec scripts/demo.sh "$BUILD_DIR"
