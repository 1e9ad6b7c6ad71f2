#!/usr/bin/env bash
# The unit and 2-rank tests under AddressSanitizer and UndefinedBehaviorSanitizer (a CI job:
# .ci/run runs it after scripts/test.sh). Builds into build-asan/ (gcc, -O1, no benchmarks),
# then runs the unit tests and ctest -L dist (with the small data file the combination matrix
# trains on).
# Any report fails the run (UBSan does not recover).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh > /dev/null   # packages (and the normal build, which test.sh needs anyway)
BUILD=${ASAN_BUILD_DIR:-build-asan}
FLAGS="-O1 -g1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DOODT_BUILD_BENCH=OFF \
    -DCMAKE_CXX_FLAGS_SANITIZE="$FLAGS" -DCMAKE_C_FLAGS_SANITIZE="$FLAGS" \
    -DCMAKE_EXE_LINKER_FLAGS_SANITIZE="-fsanitize=address,undefined" > /dev/null
fi
cmake --build "$BUILD" --target oodt_tests oodt_dist_tests oodt_watchdog_probe oodt_combination_tests oodtrain -- -j "${OODT_BUILD_JOBS:-$(nproc)}"
# LibTorch is not instrumented: its static registries look like leaks at exit, and it frees
# some memory it did not allocate with the matching operator. Everything else is checked.
export ASAN_OPTIONS="detect_leaks=0:alloc_dealloc_mismatch=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd "$BUILD"
# The unit tests in one process: ctest's one process per test spends most of its time starting
# an instrumented LibTorch (about 2 s each, 190 times); one process also keeps memory freed by
# one test around for the next to trip over.
OMP_NUM_THREADS=1 tests/oodt_tests
ctest --output-on-failure --timeout 900 -j "${OODT_TEST_JOBS:-$(nproc)}" -L dist "$@"
