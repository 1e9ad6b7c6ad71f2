#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit, 2-rank MPI, CLI, and
# sweeps on a local Slurm that it starts and stops).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The Slurm tests (label slurm) need a running cluster: a local single-node one, as root.
if [ "$(id -u)" -eq 0 ] && [ -z "${SLURM_CONF:-}" ]; then
  eval "$(scripts/slurm_local.sh start)"
  trap "'$PWD/scripts/slurm_local.sh' stop" EXIT
fi
cd "${BUILD_DIR:-build}"
# One test per core (OODT_TEST_JOBS to change): the tests that must run alone are RUN_SERIAL.
ctest --output-on-failure --timeout 900 -j "${OODT_TEST_JOBS:-$(nproc)}" "$@"
