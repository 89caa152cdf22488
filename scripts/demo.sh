#!/bin/sh
# demo.sh - the main job on a fresh Debian 12 machine, as root: installs what
# is missing, builds, and runs the demo fleet, printing its report.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build
exec ./build/vmm/vmm run --config configs/demo.json "$@"
