# The plugins whose communication differs from plain averaging, on 4 hosts x 1 rank (every
# collective crosses hosts over TCP), each bit-identical to the same job on one host:
#  - dist.compress fp16 and bf16 (16-bit buckets summed in float32);
#  - soup_ingredients with 2 candidates of 2 ranks each: each candidate's group spans 2 hosts
#    (ranks 0-1 on oodt-h0/h1, ranks 2-3 on oodt-h2/h3), the soup averages across all four;
#  - FedSpeed: 8 clients dealt over 4 hosts, periodic averaging of the local models.
# Then the README's "two nodes" example, scaled to this machine: `-H host:2,host:2 --bind-to
# socket` with configs/quickstart.yaml.
source "$(dirname "$0")/common.sh" "$@"
np=4
cluster_up 4 1
run_expect 0 "$WORK/where" -- bash "$CLUSTER" run -- -np "$np" sh -c 'echo "where $OMPI_COMM_WORLD_RANK $(hostname)"'
for ((r = 0; r < np; r++)); do expect_contains "$WORK/where" "where $r oodt-h$r"; done

# same NAME ARGS...: the tiny job with ARGS on the 4 hosts and on one host (overlap on there too,
# as dist.overlap: auto turns it on across hosts); every checkpointed tensor, the final
# checkpoint and every file NAME lists in $files must be equal.
same() {
  local name=$1; shift
  local start; start=$(date +%s.%N)
  run_expect 0 "$WORK/o" -- bash "$CLUSTER" run -- -np "$np" "$OODTRAIN" train -c "$WORK/tiny.yaml" \
    --set run.dir="$WORK/multi_$name" "$@"
  echo "$name: 4 hosts x 1 rank $(echo "$(date +%s.%N) - $start" | bc) s"
  expect_contains "$WORK/o" "$np rank(s), backend mpi"
  expect_contains "$WORK/o" "4 node(s)"
  run_expect 0 "$WORK/o" -- "$MPIRUN" -np "$np" --oversubscribe "$OODTRAIN" train -c "$WORK/tiny.yaml" \
    --set run.dir="$WORK/one_$name" --set dist.overlap=true "$@"
  local f
  for f in ckpt_000000024.h5 ${files:-}; do
    [ -e "$WORK/multi_$name/$f" ] || { ls "$WORK/multi_$name"; fail "$name: no $f"; }
    cmp_ckpt "$WORK/multi_$name/$f" "$WORK/one_$name/$f" || fail "$name: $f differs between 4 hosts and one host"
  done
}

same fp16 --set dist.compress=fp16
same bf16 --set dist.compress=bf16
# The compressed run is not the uncompressed one (the comparison above is not vacuous).
same none
! cmp_ckpt "$WORK/multi_fp16/ckpt_000000024.h5" "$WORK/multi_none/ckpt_000000024.h5" > /dev/null 2>&1 ||
  fail "fp16 compression changed nothing"
files="candidate_0.h5 candidate_1.h5" same soup \
  --set 'algorithms=[{soup_ingredients: {merge: uniform, recalibrate_fraction: 0, lr_scale: [1.0, 0.5], group_size: 2}}]'
expect_contains "$WORK/o" "the final evaluation below is the uniform soup's"
same fedspeed --set dist.overlap=false \
  --set 'algorithms=[{fedspeed: {clients: 8, participation: 0.5, local_steps: 3}}]'

# README: "Two nodes with Open MPI", at 2 ranks per host.
bash "$CLUSTER" down > /dev/null
cluster_up 2 2
sed "s|dir: .*|dir: $WORK/readme|" "$SRC/../configs/quickstart.yaml" > "$WORK/quick.yaml"
grep -q "dir: $WORK/readme" "$WORK/quick.yaml" || fail "configs/quickstart.yaml has no run.dir line to point at $WORK"
run_expect 0 "$WORK/o" -- bash "$CLUSTER" run -- -np 4 -H oodt-h0:2,oodt-h1:2 --bind-to socket \
  "$OODTRAIN" train -c "$WORK/quick.yaml" --set data.path="$DATA" --set train.steps=6 \
  --set train.eval_every=0 --set train.checkpoint_every=6
expect_contains "$WORK/o" "4 rank(s), backend mpi"
expect_contains "$WORK/o" "2 node(s), dist.overlap on"
[ -e "$WORK/readme/ckpt_000000006.h5" ] || { cat "$WORK/o"; fail "README example: no checkpoint"; }
echo "1 passed, 0 failed"
