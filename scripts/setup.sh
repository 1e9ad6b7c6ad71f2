#!/usr/bin/env bash
# Installs what is missing (Debian 12, as root; quick when everything is present) and builds
# oodtrain into build/. Used by scripts/quickstart.sh, scripts/test.sh and .ci/run.
#   scripts/setup.sh                 everything (oodtrain, tests, benchmarks)
#   scripts/setup.sh oodtrain        only these ninja targets (the quickstart's)
#   scripts/setup.sh --deps-only     packages only, no build
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  g++ cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread          # LibTorch 1.13 on an optimized BLAS
  openmpi-bin libopenmpi-dev                  # MPI backend and mpirun
  libyaml-cpp-dev libboost-program-options-dev libhdf5-dev zlib1g-dev nlohmann-json3-dev
  libturbojpeg0-dev libpng-dev                # image datasets: JPEG (libjpeg-turbo) and PNG decoding
  libgtest-dev googletest                     # tests
  python3-torch python3-h5py python3-numpy python3-yaml  # golden values, checkpoint and config checks in tests
  python3-matplotlib                          # figures (scripts/oodt_plot.py, run by oodtrain)
  python3-pil                                 # image-folder trees the data-import tests generate
  python3-venv                                # the virtualenv below
  slurmctld slurmd slurm-client munge libpmix-dev  # a local Slurm for the sweep tests
  iproute2 util-linux bc                      # namespace hosts for the multi-node tests
  dataset-fashion-mnist                       # the embedded default data
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

# TensorBoard (PyPI only), for tests/cli/tensorboard.sh, which reads the events files oodtrain
# writes with it: a virtualenv over Debian's python3, whose numpy it shares.
# Only for a full build (the tests'): the quickstart's `setup.sh oodtrain` does without it.
PY_VENV=$HOME/.cache/oodt/py-venv
if [ $# -eq 0 ] && ! "$PY_VENV/bin/python" -c "import tensorboard" 2> /dev/null; then
  echo "setup: installing tensorboard into $PY_VENV"
  /usr/bin/python3 -m venv --system-site-packages "$PY_VENV"
  "$PY_VENV/bin/pip" install -q tensorboard==2.21.0
fi

[ "${1:-}" = "--deps-only" ] && exit 0

BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
fi
# Two parallel LibTorch-heavy compilations fit comfortably in memory on a 2-core machine.
cmake --build "$BUILD_DIR" -- -j "${OODT_BUILD_JOBS:-$(nproc)}" "$@"
