#!/usr/bin/env bash
# The GPU check (docs/gpu.md, "The GPU check"): on a GPU machine with no package registry, builds
# oodtrain against that machine's own python3 torch 2.x (CUDA) and the Debian libraries carried
# in third_party/gpu_deps (scripts/fetch_gpu_deps.sh), then runs
#   1. the GPU-labelled tests (ctest -L gpu),
#   2. two short training runs of the quickstart CNN on the test data, train.precision fp32 and bf16,
#   3. the GPU throughput benchmark (bench/gpu_throughput.py): bf16 vs fp32 and channels_last vs
#      the default layout, side by side, for the CNN and resnet18,
# and writes everything into one folder: $OUT when set (the device tool's), else gpu_results/.
# Budget: under 8 minutes on 16 cores (docs/gpu.md has the breakdown).
#
#   scripts/gpu_check.sh             on a GPU machine; without a GPU the same steps run on the CPU
#   scripts/gpu_check.sh --dry-run   the CPU stand-in on purpose (short runs): checks the build
#                                    from the carried packages and every step but the GPU itself
#   scripts/gpu_check.sh --reuse     keep the unpacked packages and the build folder of an earlier
#                                    run (incremental; by default both are made afresh, as on a
#                                    bare machine)
# Environment: PYTHON (the python3 whose torch to build against; python3), CUDA_HOME (the toolkit;
# found from nvcc), GPU_DEPS (third_party/gpu_deps), GPU_CHECK_WORK (scratch: the unpacked
# packages and the build; /tmp/oodt-gpu-check), GPU_CHECK_JOBS (build jobs; all cores).
set -euo pipefail

unpack() {  # unpack DEB DIR: dpkg -x, or ar + tar where there is no dpkg
  if command -v dpkg-deb > /dev/null; then
    dpkg-deb -x "$1" "$2"
  else
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && ar x "$1" && tar -xf data.tar.* -C "$2")
    rm -rf "$tmp"
  fi
}

# The carried .debs: the direct set into $PREFIX; the runtime set beside it, each of its
# libraries linked into $WORK/runtime-lib only where the machine has none of that SONAME
# (LD_LIBRARY_PATH would otherwise put Debian's in front of the machine's own).
unpack_packages() {
  rm -rf "$PREFIX" "$WORK/runtime" "$WORK/runtime-lib"
  mkdir -p "$PREFIX" "$WORK/runtime" "$WORK/runtime-lib"
  local deb link target base sys f soname machine_libs filled=()
  for deb in "$DEPS"/debs/direct/*.deb; do unpack "$deb" "$PREFIX"; done
  for deb in "$DEPS"/debs/runtime/*.deb; do unpack "$deb" "$WORK/runtime"; done
  machine_libs=$(ldconfig -p)
  # Absolute symlinks (libz.so -> /lib/x86_64-linux-gnu/libz.so.1.2.13) point into the machine,
  # not the prefix: into the prefix when the target is there, else to the machine's library of
  # the same name and any version.
  while IFS= read -r link; do
    target=$(readlink "$link")
    [[ $target == /* ]] || continue
    if [ -e "$PREFIX$target" ]; then
      ln -sfn "$PREFIX$target" "$link"
    elif [ ! -e "$target" ]; then
      base=$(basename "$target" | sed 's/\.so\..*/.so/')
      sys=$(awk -v b="$base." 'index($1, b) == 1 && /x86-64/ {print $NF; exit}' <<< "$machine_libs")
      if [ -n "$sys" ]; then ln -sfn "$sys" "$link"; fi
    fi
  done < <(find "$PREFIX" -type l)
  local -A have=()
  while read -r soname _; do have[$soname]=1; done < <(ldconfig -p | tail -n +2)
  # One readelf for all of them: "File: PATH" heads each file's dynamic section.
  while read -r f soname; do
    [ -z "${have[$soname]:-}" ] || continue
    ln -sfn "$f" "$WORK/runtime-lib/$soname"
    filled+=("$soname")
  done < <(find "$WORK/runtime" -type f -name 'lib*.so.*' -print0 | xargs -0 readelf -d 2>/dev/null |
           awk '/^File: / {f = $2} /Library soname:/ {gsub(/[][]/, "", $NF); print f, $NF}')
  note "packages: $(ls "$DEPS"/debs/direct/*.deb | wc -l) unpacked into $PREFIX; from the runtime set, used for lack of the machine's own: ${filled[*]:-none}"
}

# All of it in one function, read whole before it runs: editing this file during a run (a
# 5-minute build) cannot change what the run does next.
main() {
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DRY_RUN=0
REUSE=0
for a in "$@"; do
  case $a in
    --dry-run) DRY_RUN=1 ;;
    --reuse) REUSE=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument $a (see --help)" >&2; exit 2 ;;
  esac
done

RESULTS=${OUT:-$ROOT/gpu_results}
DEPS=$(cd "${GPU_DEPS:-$ROOT/third_party/gpu_deps}" 2>/dev/null && pwd) || {
  echo "gpu_check: no ${GPU_DEPS:-third_party/gpu_deps}: run scripts/fetch_gpu_deps.sh where a package registry is" >&2
  exit 1
}
WORK=${GPU_CHECK_WORK:-/tmp/oodt-gpu-check}
JOBS=${GPU_CHECK_JOBS:-$(nproc)}
PYTHON=${PYTHON:-python3}
mkdir -p "$RESULTS" "$WORK"
# At most 8 files come back from the device tool's $OUT: this one log, summary.txt, the test log,
# two metrics files and the benchmark's two.
exec > >(tee "$RESULTS/gpu_check.log") 2>&1
SUMMARY=$RESULTS/summary.txt
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
t_start=$(date +%s)
stage_start=$t_start
stage() {  # stage NAME: the previous stage's time, and this one's start
  local now
  now=$(date +%s)
  [ -z "${STAGE:-}" ] || note "time: $STAGE $((now - stage_start)) s"
  STAGE=$1
  stage_start=$now
  echo "=== gpu_check: $1 ($((now - t_start)) s)"
}

stage "environment"
note "gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
note "os: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"); $(ldd --version 2>&1 | head -1); $(nproc) cores"
note "compiler: $(c++ --version | head -1); cmake $(cmake --version | head -1 | awk '{print $3}'); ninja $(ninja --version)"
if command -v nvidia-smi > /dev/null; then
  note "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
fi
NVCC=$(command -v nvcc || true)
CUDA=${CUDA_HOME:-$( [ -n "$NVCC" ] && dirname "$(dirname "$(readlink -f "$NVCC")")" || echo /usr/local/cuda)}
[ -x "$CUDA/bin/nvcc" ] || { echo "gpu_check: no nvcc under $CUDA (set CUDA_HOME): LibTorch's CUDA config needs the toolkit" >&2; exit 1; }
note "cuda: $CUDA, $("$CUDA/bin/nvcc" --version | grep -o 'release [0-9.]*')"
# The torch package folder itself as CMake's prefix, not torch.utils.cmake_prefix_path: a
# system libtorch would otherwise lend its libc10.so (CMakeLists.txt refuses the mix).
TORCH_DIR=$("$PYTHON" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torch").origin))')
SITE=$(dirname "$TORCH_DIR")
[ -f "$TORCH_DIR/share/cmake/Torch/TorchConfig.cmake" ] || { echo "gpu_check: no TorchConfig.cmake under $TORCH_DIR" >&2; exit 1; }
read -r TORCH_VERSION TORCH_CUDA HAS_GPU < <("$PYTHON" -W ignore -c 'import torch
print(torch.__version__, torch.version.cuda, int(torch.cuda.is_available()))' 2>/dev/null)
note "torch: $TORCH_VERSION (CUDA $TORCH_CUDA) from $TORCH_DIR, GPU visible: $HAS_GPU"
if [ "$DRY_RUN" = 1 ] || [ "$HAS_GPU" != 1 ]; then
  DEVICE=cpu
  note "device: cpu -- $([ "$DRY_RUN" = 1 ] && echo 'dry run' || echo 'NO GPU FOUND'): the GPU tests skip, the runs below are the CPU stand-in, short, and measure nothing about GPUs"
else
  DEVICE=cuda
  note "device: cuda"
fi

stage "unpack the carried packages"
PREFIX=$WORK/deps
ARCH_LIB=usr/lib/x86_64-linux-gnu
local stamp
stamp=$(ls -l "$DEPS"/debs/*/*.deb | awk '{print $5, $NF}' | md5sum | cut -c1-32)
if [ "$REUSE" = 1 ] && [ "$(cat "$PREFIX/.gpu_check_stamp" 2>/dev/null)" = "$stamp" ]; then
  note "packages: reusing $PREFIX"
else
  unpack_packages
  echo "$stamp" > "$PREFIX/.gpu_check_stamp"
fi

# Everything built below runs against the prefix's libraries. Open MPI unpacked away from /usr
# finds its components, help texts and orted (which a singleton MPI_Init starts) only through
# OPAL_PREFIX.
export LD_LIBRARY_PATH=$PREFIX/$ARCH_LIB:$WORK/runtime-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OPAL_PREFIX=$PREFIX/usr
export OPAL_SYSCONFDIR=$PREFIX/etc/openmpi  # Debian's defaults (no UCX/OFI/openib components)
export PATH=$PREFIX/usr/bin:$PATH
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mca_base_component_show_load_errors=0  # components whose fabric libraries are absent
# PMIx from the runtime set looks for its plugins where Debian installs it, unless told.
[ ! -e "$WORK/runtime-lib/libpmix.so.2" ] || export PMIX_INSTALL_PREFIX=$WORK/runtime/$ARCH_LIB/pmix2

stage "configure"
BUILD=$WORK/build
[ "$REUSE" = 1 ] || rm -rf "$BUILD"
# NCCL: the nvidia-nccl-cu13 wheel's next to torch when there is one (the file torch loads
# itself), else the toolkit's. The wheel has no unversioned libnccl.so.
if [ -f "$SITE/nvidia/nccl/include/nccl.h" ]; then
  mkdir -p "$WORK/nccl"
  # Both names: the link needs libnccl.so, and the loader looks for the SONAME libnccl.so.2 in
  # the binary's RUNPATH (this folder) before LibTorch's RUNPATH would find the wheel's.
  ln -sfn "$SITE/nvidia/nccl/lib/libnccl.so.2" "$WORK/nccl/libnccl.so"
  ln -sfn "$SITE/nvidia/nccl/lib/libnccl.so.2" "$WORK/nccl/libnccl.so.2"
  NCCL=(-DOODT_NCCL_INCLUDE="$SITE/nvidia/nccl/include" -DOODT_NCCL_LIB="$WORK/nccl/libnccl.so")
else
  NCCL=()
fi
MPI_LIBDIR=$PREFIX/$ARCH_LIB/openmpi/lib
# FindMPI without the compiler wrappers (their paths are compiled in): header and library given.
TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} CUDA_HOME=$CUDA cmake -S "$ROOT" -B "$BUILD" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOODT_BUILD_BENCH=OFF -DOODT_USE_CCACHE=OFF \
  -DCMAKE_PREFIX_PATH="$TORCH_DIR;$PREFIX/usr" -DCMAKE_FIND_PACKAGE_PREFER_CONFIG=ON \
  -DCUDA_TOOLKIT_ROOT_DIR="$CUDA" -DCMAKE_CUDA_COMPILER="$CUDA/bin/nvcc" -DOODT_WITH_NCCL=ON "${NCCL[@]}" \
  -DMPI_C_COMPILER=MPI_C_COMPILER-NOTFOUND -DMPI_C_HEADER_DIR="$MPI_LIBDIR/../include" -DMPI_C_LIB_NAMES=mpi \
  -DMPI_mpi_LIBRARY="$MPI_LIBDIR/libmpi.so" -DMPIEXEC_EXECUTABLE="$PREFIX/usr/bin/mpirun.openmpi" \
  -DHDF5_ROOT="$PREFIX/usr" -DHDF5_C_INCLUDE_DIR="$PREFIX/usr/include/hdf5/serial" \
  -DHDF5_hdf5_LIBRARY_RELEASE="$PREFIX/$ARCH_LIB/hdf5/serial/libhdf5.so" -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON \
  -DZLIB_ROOT="$PREFIX/usr" > "$WORK/configure.log" 2>&1 || { cat "$WORK/configure.log"; exit 1; }
grep -E "oodtrain:|Found (MPI|HDF5|ZLIB|Boost|yaml|GTest|CUDA)" "$WORK/configure.log" || true
# Every library from the prefix, none from the machine: what this check is about.
found=$(grep -E "^(yaml-cpp_DIR|nlohmann_json_DIR|Boost_DIR|boost_program_options_DIR|GTest_DIR|HDF5_hdf5_LIBRARY_RELEASE|MPI_mpi_LIBRARY|ZLIB_LIBRARY_RELEASE|c10_LIBRARY):" "$BUILD/CMakeCache.txt")
echo "$found"
stray=$(echo "$found" | grep -v -e "=$PREFIX/" -e "=$TORCH_DIR/" || true)
[ -z "$stray" ] || { echo "gpu_check: found outside the carried packages and torch:"; echo "$stray"; exit 1; }
note "configured: LibTorch $(grep -o 'oodtrain: LibTorch [^ ]*' "$WORK/configure.log" | awk '{print $3}'), $(grep -o 'NCCL backend [A-Z]* ([^)]*)' "$WORK/configure.log" || echo 'NCCL backend ?'), OODT_TORCH_CUDA=$(grep -q "OODT_TORCH_CUDA=1" "$BUILD/compile_commands.json" && echo 1 || echo 0)"

stage "build"
# Wall and CPU seconds (the CPU time tells what another core count would take).
local TIMEFORMAT='%R %U %S' build_times
build_times=$( { time ninja -C "$BUILD" -j "$JOBS" oodtrain oodt_gpu_tests > "$WORK/build.log" 2>&1; } 2>&1 ) ||
  { tail -50 "$WORK/build.log"; exit 1; }
note "built oodtrain and oodt_gpu_tests ($(grep -c 'Building CXX' "$WORK/build.log") compilations) with $JOBS jobs: $(echo "$build_times" | awk '{printf "%.0f s wall, %.0f s CPU", $1, $2 + $3}')"
OODTRAIN=$BUILD/launch/oodtrain
ldd "$OODTRAIN" | grep -E "libmpi|libyaml|libhdf5|libboost|libtorch\.so|libtorch_cuda\.so|libc10\.so|libc10_cuda|libnccl|libcudart" | sed 's/ (0x.*//'
ldd "$OODTRAIN" | grep -q "not found" && { ldd "$OODTRAIN" | grep "not found"; exit 1; }

stage "GPU tests (ctest -L gpu)"
# The test data comes carried: the fixture that would make it needs Fashion-MNIST's files.
mkdir -p "$BUILD/testdata"
cp "$DEPS/testdata/rotated_fmnist.h5" "$BUILD/testdata/"
DATA=$BUILD/testdata/rotated_fmnist.h5
set +e
# Time limits on every step below keep a hang from eating the device lease (rc 124: timed out).
(cd "$BUILD" && timeout 300 ctest -L gpu --fixture-exclude-setup testdata --output-on-failure -V) > "$RESULTS/gpu_tests.log" 2>&1
tests_rc=$?
set -e
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[ +(OK|FAILED|SKIPPED) \]|no CUDA device|tests passed|tests failed" "$RESULTS/gpu_tests.log" | tail -20 || true
note "gpu tests: ctest rc=$tests_rc; $(grep -E '[0-9]+% tests passed' "$RESULTS/gpu_tests.log" || echo 'no summary'); $(grep -c '^\[       OK \]' "$RESULTS/gpu_tests.log") test cases OK, $(grep -c '^\[  FAILED  \] [A-Za-z]' "$RESULTS/gpu_tests.log") failed, $(grep -q 'no CUDA device' "$RESULTS/gpu_tests.log" && echo 'skipped: no CUDA device' || echo 'ran on the GPU')"

stage "training runs (fp32, bf16)"
if [ "$DEVICE" = cuda ]; then STEPS=600; else STEPS=40; fi
train() {  # train PRECISION: the quickstart CNN on the test data
  local dir=$WORK/runs/$1
  rm -rf "$dir"
  local t0
  t0=$(date +%s)
  timeout 150 "$OODTRAIN" train -c "$ROOT/configs/quickstart.yaml" --set run.dir="$dir" --set data.path="$DATA" \
    --set train.device=$DEVICE --set train.precision="$1" --set train.steps=$STEPS --set train.eval_every=$((STEPS / 2)) \
    --set train.checkpoint_every=0 --set schedule.warmup_steps=$((STEPS / 10)) > "$WORK/train_$1.log" 2>&1 ||
    { tail -30 "$WORK/train_$1.log"; return 1; }
  cp "$dir/metrics.jsonl" "$RESULTS/train_$1.jsonl"
  "$PYTHON" - "$dir/metrics.jsonl" "$1" "$(( $(date +%s) - t0 ))" <<'EOF' | tee -a "$SUMMARY"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
last, s = rows[-1], rows[-1].get("summary", {})
fmt = lambda x: "null" if x is None else f"{x:.4f}"
print(f"train {sys.argv[2]}: {last['step']} steps in {sys.argv[3]} s; train_loss {fmt(last.get('train_loss'))}, "
      f"val_acc {fmt(s.get('val_acc'))}, heldout_acc {fmt(s.get('heldout_acc'))}, {last['samples_per_s']:.0f} samples/s")
EOF
}
train_rc=0
train fp32 || train_rc=1
train bf16 || train_rc=1

stage "benchmark (bench/gpu_throughput.py)"
if [ "$DEVICE" = cuda ]; then BENCH=(--rounds 2 --steps 300 --warmup 100); else BENCH=(--rounds 1 --steps 16 --warmup 8 --models cnn); fi
if [ "$DEVICE" = cuda ] && [ $(( $(date +%s) - t_start )) -gt 330 ]; then
  BENCH+=(--models cnn)  # the last --models wins
  note "benchmark: the CNN only, to stay inside the 8-minute budget (resnet18 left out)"
fi
set +e
PYTHONUNBUFFERED=1 timeout 240 "$PYTHON" "$ROOT/bench/gpu_throughput.py" --oodtrain "$OODTRAIN" --data "$DATA" --device $DEVICE \
  "${BENCH[@]}" --json "$RESULTS/bench.json" | tee "$RESULTS/bench.txt"
bench_rc=${PIPESTATUS[0]}
set -e
grep -E "^(cnn|resnet18) .*=" "$RESULTS/bench.txt" >> "$SUMMARY" || true

stage "done"
note "total: $(( $(date +%s) - t_start )) s; device $DEVICE; results in $RESULTS"
[ $tests_rc -eq 0 ] && [ $train_rc -eq 0 ] && [ $bench_rc -eq 0 ]
}

# One line: bash reads it whole before running main, so nothing after it is read afterwards.
main "$@"; exit
