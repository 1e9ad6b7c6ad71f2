#!/usr/bin/env bash
# Fetches what scripts/gpu_check.sh needs on a GPU machine that has no package registry, into
# one ignored folder that travels with the checkout (docs/gpu.md, "The GPU check"):
#   third_party/gpu_deps/debs/direct/   Debian 12 .debs of the libraries oodtrain builds against
#                                       (yaml-cpp, Boost.Program_options, HDF5, Open MPI,
#                                       nlohmann-json, GoogleTest, zlib), unpacked there with dpkg -x
#   third_party/gpu_deps/debs/runtime/  their shared-library dependencies, used there only where
#                                       the machine lacks a library of the same SONAME
#   third_party/gpu_deps/testdata/      the test data file (ctest's cli.prepare_data fixture
#                                       needs Debian's dataset-fashion-mnist, 31 MB, to make it)
# Run it here (Debian 12, apt lists present) after building oodtrain: it uses build/launch/oodtrain
# (OODTRAIN to override) to make the test data. About 26 MB in all; the device tool's limit for
# the whole travelling tree is 64 MiB.
#   scripts/fetch_gpu_deps.sh [DEST]          DEST defaults to third_party/gpu_deps
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-third_party/gpu_deps}
OODTRAIN=${OODTRAIN:-build/launch/oodtrain}

# Headers, CMake configs and the libraries linked directly.
DIRECT=(
  libyaml-cpp0.7 libyaml-cpp-dev
  libboost-program-options1.74.0 libboost-program-options1.74-dev libboost-program-options-dev libboost1.74-dev
  libhdf5-103-1 libhdf5-dev libsz2 libaec0
  libopenmpi3 libopenmpi-dev openmpi-bin openmpi-common
  nlohmann-json3-dev libgtest-dev googletest zlib1g-dev
)
# What those load in turn and a GPU machine's image may lack: Open MPI's components (PMIx,
# hwloc, libevent, fabrics) and libcurl's closure (libhdf5 links libcurl for its S3 driver).
RUNTIME=(
  libpmix2 libevent-core-2.1-7 libevent-pthreads-2.1-7 libhwloc15 libfabric1 libucx0 libibverbs1 librdmacm1
  libnl-3-200 libnl-route-3-200 libpsm2-2 libpsm-infinipath1 libnuma1 libmunge2 libxnvctrl0
  libcurl4 libnghttp2-14 librtmp1 libssh2-1 libpsl5 libldap-2.5-0 libgssapi-krb5-2 libkrb5-3 libk5crypto3
  libkrb5support0 libkeyutils1 libsasl2-2 libsasl2-modules-db libbrotli1
)

fetch() {  # fetch DIR PACKAGE...: the candidate version of each, for this machine's architecture
  local dir=$1
  shift
  rm -rf "$dir"
  mkdir -p "$dir"
  # As root apt cannot hand the download to its sandbox user in a folder that user cannot
  # write: download as root (quietly) instead of warning about it.
  local sandbox=()
  [ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)
  (cd "$dir" && apt-get download -q "${sandbox[@]}" "$@" > /dev/null)
}
fetch "$DEST/debs/direct" "${DIRECT[@]}"
fetch "$DEST/debs/runtime" "${RUNTIME[@]}"

mkdir -p "$DEST/testdata"
if [ ! -x "$OODTRAIN" ]; then
  echo "fetch_gpu_deps: $OODTRAIN not found: build it first (scripts/setup.sh oodtrain) or set OODTRAIN" >&2
  exit 1
fi
# The file ctest's cli.prepare_data fixture makes (tests/CMakeLists.txt), made the same way.
"$OODTRAIN" data prepare rotated-fmnist --out "$DEST/testdata" --max-samples 1800 > /dev/null

bytes=$(du -sb "$DEST" | cut -f1)
echo "fetch_gpu_deps: $(ls "$DEST"/debs/*/*.deb | wc -l) packages and the test data in $DEST, $((bytes / 1024 / 1024)) MiB"
if [ "$bytes" -gt $((56 * 1024 * 1024)) ]; then
  echo "fetch_gpu_deps: over 56 MiB: with the checkout it would not fit the 64 MiB the device tool carries" >&2
  exit 1
fi
