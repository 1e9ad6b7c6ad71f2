# Shared by the CLI tests: set -eu, paths, a tiny config and assertion helpers.
# Usage in a test: source "$(dirname "$0")/common.sh" "$@"
set -euo pipefail
OODTRAIN=$1
DATA=$2
SRC=$3
PYTHON=${PYTHON:-/usr/bin/python3}
MPIRUN=${MPIRUN:-mpirun}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# A small, fast experiment on the test data file.
cat > "$WORK/tiny.yaml" <<YAML
run: {dir: $WORK/run, seed: 3}
data: {path: $DATA, test_domains: [rot_0], batch_size: 20}
model: {name: cnn, channels: [4, 8], dropout: 0.1}
optim: {name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 1.0e-4}
schedule: {name: cosine, warmup_steps: 3}
train: {steps: 24, eval_every: 12, checkpoint_every: 8, threads: 1}
YAML

fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_contains FILE TEXT
expect_contains() { grep -qF -- "$2" "$1" || { echo "--- $1:"; cat "$1"; fail "expected '$2' in $1"; }; }
# run_expect CODE OUT -- command...: runs the command, checks its exit code, keeps stdout+stderr in OUT.
run_expect() {
  local want=$1 out=$2; shift 3
  set +e; timeout 120 "$@" > "$out" 2>&1; local got=$?; set -e
  [ "$got" -eq "$want" ] || { cat "$out"; fail "exit code $got, expected $want: $*"; }
}
