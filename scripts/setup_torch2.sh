#!/usr/bin/env bash
# The second build tree, build-torch2/: oodtrain against PyPI's torch 2.x, the CUDA 13 wheel
# (the version on the GPU machines this project is lent; TORCH2_VERSION to change it), with the
# CUDA toolkit and NCCL of /usr/local/cuda, so every CUDA and NCCL code path is compiled and
# linked (run only on a GPU machine). The wheel goes into a virtual environment outside the
# clone, kept between runs ($TORCH2_VENV, default ~/.cache/oodt/torch2-venv).
#
# Only torch itself and the three libraries the CUDA toolkit lacks are installed (--no-deps):
# the toolkit in /usr/local/cuda was built from the same nvidia wheels torch pins, so cuBLAS,
# cuDNN, NCCL and the CUDA runtime come from there (ld.so.conf) instead of 2 GB of wheels.
# docs/gpu.md has the details (ABI, versions, what is and is not exercised here).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --deps-only

TORCH2_VERSION=${TORCH2_VERSION:-2.11.0}
VENV=${TORCH2_VENV:-$HOME/.cache/oodt/torch2-venv}
CUDA=${CUDA_HOME:-/usr/local/cuda}
# Pinned as torch 2.11.0's own requirements pin them (its METADATA).
EXTRA=(nvidia-cufile==1.15.1.6 nvidia-cusparselt-cu13==0.8.0 nvidia-nvshmem-cu13==3.4.5)

torch_dir() {  # the installed torch package's folder, without importing it
  "$VENV/bin/python" -c 'import importlib.util, os; s = importlib.util.find_spec("torch"); print(os.path.dirname(s.origin))' 2>/dev/null
}
installed=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)
if [ "${installed%%+*}" != "$TORCH2_VERSION" ]; then
  echo "setup_torch2: installing torch $TORCH2_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "torch==$TORCH2_VERSION" "${EXTRA[@]}"
fi
TORCH_DIR=$(torch_dir)
[ -f "$TORCH_DIR/share/cmake/Torch/TorchConfig.cmake" ] || { echo "setup_torch2: no TorchConfig.cmake under $TORCH_DIR" >&2; exit 1; }
[ -x "$CUDA/bin/nvcc" ] || { echo "setup_torch2: the CUDA wheel needs a CUDA toolkit at configure time; none at $CUDA" >&2; exit 1; }

BUILD_DIR=${TORCH2_BUILD_DIR:-build-torch2}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  mkdir -p "$BUILD_DIR"
  # The package folder, not torch.utils.cmake_prefix_path: with the latter, find_library finds
  # Debian's libc10.so before the wheel's, and two c10 builds end up in one process
  # (CMakeLists.txt refuses that). sm_90: the H200 of the GPU machine (no GPU to detect here).
  TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_PREFIX_PATH="$TORCH_DIR" -DCUDA_TOOLKIT_ROOT_DIR="$CUDA" -DCMAKE_CUDA_COMPILER="$CUDA/bin/nvcc" \
    -DOODT_WITH_NCCL=ON > "$BUILD_DIR/configure.log" 2>&1 || { cat "$BUILD_DIR/configure.log" >&2; exit 1; }
fi
cmake --build "$BUILD_DIR" -- -j "${OODT_BUILD_JOBS:-$(nproc)}" "$@"
