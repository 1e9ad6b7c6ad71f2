# Shared by the multi-node tests: the CLI tests' helpers and tiny config, plus a cluster of
# namespace hosts (scripts/netns_cluster.sh) that is torn down whatever way the test ends.
# Usage in a test: source "$(dirname "$0")/common.sh" "$@"; cluster_up HOSTS RANKS_PER_HOST
source "$(dirname "${BASH_SOURCE[0]}")/../cli/common.sh" "$@"
CLUSTER="$SRC/../scripts/netns_cluster.sh"
export OODT_NETNS_DIR="$WORK/netns"
# Run on the machine's default: a user's OMP_NUM_THREADS would hide the per-node thread split.
unset OMP_NUM_THREADS
# ctest sets these for every mpirun test; set here too so a test also runs by hand as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cleanup() { bash "$CLUSTER" down > /dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root for network namespaces"; exit 77; }
# A container without CAP_SYS_ADMIN cannot make them: say so and skip rather than fail.
unshare --net true 2> /dev/null || { echo "SKIP: this machine does not allow network namespaces (unshare --net failed)"; exit 77; }
cluster_up() {
  bash "$CLUSTER" down > /dev/null 2>&1 || true
  OODT_NETNS_SLOTS=$2 bash "$CLUSTER" up "$1" > "$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; fail "cluster up $1"; }
}
# cluster_mpirun ARGS...: mpirun across the hosts (from host 0).
cluster_mpirun() { bash "$CLUSTER" run -- "$@"; }
# The pid of the oodtrain process of world rank R (waits up to 30 s for it).
rank_pid() {
  local r=$1 p
  for _ in $(seq 150); do
    for p in $(pgrep -f "$OODTRAIN train -c $WORK/" || true); do  # this test's jobs only
      if tr '\0' '\n' < "/proc/$p/environ" 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$r"; then echo "$p"; return 0; fi
    done
    sleep 0.2
  done
  return 1
}
# Waits for a "step " progress line in FILE (up to 30 s).
wait_for_steps() {
  for _ in $(seq 150); do grep -q "^step " "$1" 2> /dev/null && return 0; sleep 0.2; done
  cat "$1"; fail "no training step in $1"
}
cmp_ckpt() { "$PYTHON" "$SRC/cli/compare_checkpoints.py" "$@"; }
# Fails (the EXIT trap then removes the hosts and their processes) when background job PID is
# still running, so that a following `wait` cannot block.
job_ended() { kill -0 "$1" 2> /dev/null && fail "the job (pid $1) is still running"; return 0; }
