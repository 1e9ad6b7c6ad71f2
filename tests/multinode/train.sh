# Two namespace hosts over TCP, 1 and 2 ranks per host: Open MPI sees two nodes, oodtrain sees
# the ranks of its own node only (cores split among them), dist.overlap: auto turns on because
# the ranks span nodes, and the result is bit-identical to the same job on one host.
source "$(dirname "$0")/common.sh" "$@"
cores=$(getconf _NPROCESSORS_ONLN)  # what std::thread::hardware_concurrency reports
# threads per rank with train.threads: 0, from the documented rule: cores / ranks on the node
per_rank() { local n=$(( cores / $1 )); echo $(( n < 1 ? 1 : n )); }
has_order() { "$PYTHON" -c "import h5py,sys; sys.exit(0 if 'averaging/bucket_order' in h5py.File(sys.argv[1]) else 1)" "$1"; }

for rph in 1 2; do
  np=$(( 2 * rph ))
  cluster_up 2 "$rph"
  # Open MPI's view: every rank's host (its own UTS name), local rank and ranks on its node.
  run_expect 0 "$WORK/where" -- bash "$CLUSTER" run -- -np "$np" \
    sh -c 'echo "where $OMPI_COMM_WORLD_RANK $(hostname) $OMPI_COMM_WORLD_LOCAL_RANK $OMPI_COMM_WORLD_LOCAL_SIZE"'
  for ((r = 0; r < np; r++)); do
    expect_contains "$WORK/where" "where $r oodt-h$(( r / rph )) $(( r % rph )) $rph"
  done
  [ "$(grep -c '^where ' "$WORK/where")" -eq "$np" ] || fail "expected $np ranks in $WORK/where"

  # oodtrain's view of its node (MPI_COMM_TYPE_SHARED): threads per rank = cores / local ranks,
  # the node count, and dist.overlap: auto resolved to on because the ranks span nodes.
  run_expect 0 "$WORK/o" -- bash "$CLUSTER" run -- -np "$np" "$OODTRAIN" train -c "$WORK/tiny.yaml" \
    --set run.dir="$WORK/threads$rph" --set train.threads=0 --set train.steps=2 --set train.eval_every=0
  expect_contains "$WORK/o" "$np rank(s), backend mpi, device cpu, $(per_rank "$rph") thread(s) per rank, 2 node(s), dist.overlap on"

  # The tiny job on 2 hosts, and the same on one host (np ranks, shared memory).
  start=$(date +%s.%N)
  run_expect 0 "$WORK/o" -- bash "$CLUSTER" run -- -np "$np" "$OODTRAIN" train -c "$WORK/tiny.yaml" \
    --set run.dir="$WORK/multi$rph"
  echo "2 hosts x $rph rank(s): tiny job $(echo "$(date +%s.%N) - $start" | bc) s"
  expect_contains "$WORK/o" "$np rank(s), backend mpi"
  run_expect 0 "$WORK/o" -- "$MPIRUN" -np "$np" --oversubscribe "$OODTRAIN" train -c "$WORK/tiny.yaml" \
    --set run.dir="$WORK/one$rph"
  expect_contains "$WORK/o" "$np rank(s), backend mpi, device cpu, 1 thread(s) per rank, 1 node(s), dist.overlap off"
  run_expect 0 "$WORK/o" -- "$MPIRUN" -np "$np" --oversubscribe "$OODTRAIN" train -c "$WORK/tiny.yaml" \
    --set run.dir="$WORK/one_overlap$rph" --set dist.overlap=true
  # overlap: auto is on across hosts: the bucket order it re-plans from the gradient hooks is
  # checkpointed, which it is not on one host (auto is off there for CPU tensors).
  has_order "$WORK/multi$rph/ckpt_000000024.h5" || fail "2 hosts x $rph: dist.overlap auto did not turn on"
  ! has_order "$WORK/one$rph/ckpt_000000024.h5" || fail "one host: dist.overlap auto turned on"
  # Bit-identical to one host with overlap on (everything, the bucket order too) ...
  cmp_ckpt "$WORK/multi$rph/ckpt_000000024.h5" "$WORK/one_overlap$rph/ckpt_000000024.h5" ||
    fail "2 hosts x $rph: not bit-identical to one host"
  # ... and, overlap off on 2 hosts, to the default job on one host.
  run_expect 0 "$WORK/o" -- bash "$CLUSTER" run -- -np "$np" "$OODTRAIN" train -c "$WORK/tiny.yaml" \
    --set run.dir="$WORK/multi_off$rph" --set dist.overlap=false
  cmp_ckpt "$WORK/multi_off$rph/ckpt_000000024.h5" "$WORK/one$rph/ckpt_000000024.h5" ||
    fail "2 hosts x $rph, overlap off: not bit-identical to one host"
  cmp "$WORK/multi$rph/plugins.txt" "$WORK/one$rph/plugins.txt" > /dev/null || fail "plugins.txt differs"
done
echo "1 passed, 0 failed"
