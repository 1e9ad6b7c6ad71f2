# Two ranks end to end: ranks agree on the rank/world from MPI, the run finishes with the table.
source "$(dirname "$0")/common.sh" "$@"
run_expect 0 "$WORK/o" -- "$MPIRUN" -np 2 --oversubscribe "$OODTRAIN" train -c "$WORK/tiny.yaml" --set 'algorithms=[mixup]'
expect_contains "$WORK/o" "2 rank(s), backend mpi"
expect_contains "$WORK/o" "rot_0          held-out"
"$PYTHON" -c "
import json,sys,h5py
rows=[json.loads(l) for l in open(sys.argv[1]+'/metrics.jsonl')]
assert rows[-1]['world_size']==2 and rows[-1]['step']==24
f=h5py.File(sys.argv[1]+'/ckpt_000000024.h5'); assert f.attrs['world_size']==2 and f['rng/torch_cpu'].shape[0]==2
# every sample of every split evaluated exactly once across the ranks
n=sum(v[s]['n'] for v in rows[-1]['domains'].values() for s in ('in','out'))
assert n==1800, n
print('ok')" "$WORK/run"
echo "1 passed, 0 failed"
