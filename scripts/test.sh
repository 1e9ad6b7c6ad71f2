#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit, 2-rank MPI, CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 "$@"
