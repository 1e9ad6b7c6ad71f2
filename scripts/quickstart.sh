#!/usr/bin/env bash
# The main job on the embedded default data: install, build, prepare Rotated Fashion-MNIST,
# then train a CNN on 2 ranks with rotation 0 held out and print the per-domain table.
set -euo pipefail
cd "$(dirname "$0")/.."
# Only what it runs: the oodtrain binary (the tests and benchmarks are scripts/test.sh's).
scripts/setup.sh oodtrain
[ -f datasets/rotated_fmnist.h5 ] || build/launch/oodtrain data prepare rotated-fmnist --out datasets
# As root, Open MPI needs explicit consent; --oversubscribe lets 2 ranks share fewer cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun -np 2 --oversubscribe build/launch/oodtrain train -c configs/quickstart.yaml --overwrite "$@"
