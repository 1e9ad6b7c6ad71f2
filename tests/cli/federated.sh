# FedSpeed and FedAvg end to end on 2 ranks: clients dealt by a Dirichlet label split, partial
# participation, checkpoints in the middle of rounds; an interrupted run resumes bit-identically
# (every rank's clients and local model are in the checkpoint), and bad layouts are refused.
source "$(dirname "$0")/common.sh" "$@"
cmp() { "$PYTHON" "$SRC/cli/compare_checkpoints.py" "$@"; }
MPI=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")
FED='algorithms=[{fedspeed: {clients: 6, participation: 0.34, local_steps: 3, split: dirichlet, dirichlet_alpha: 0.3}}]'
SET=(--set "$FED" --set optim.momentum=0 --set train.eval_every=12)
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/full" "${SET[@]}"
"$PYTHON" - "$WORK/full" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
p = rows[-1]["plugins"]
# 6 clients, 1 active per rank (0.34 * 6 / 2 rounds to 1): a round is 3 steps, 24 steps are 8 rounds.
assert p["round"] == 8 and p["active_clients"] == 2, p
assert p["drift"] > 0 and p["bytes_per_rank"] > 0, p
assert rows[0]["plugins"]["bytes_per_rank"] * 2 == p["bytes_per_rank"], rows   # same payload every round
print("fedspeed metrics ok:", p)
PY
# Stopped mid-round (step 5 of rounds of 3) and again at 19, resumed: bit-identical.
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part" "${SET[@]}" --stop-at-step 5
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part" "${SET[@]}" --resume --stop-at-step 19
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part" "${SET[@]}" --resume
cmp "$WORK/full/ckpt_000000024.h5" "$WORK/part/ckpt_000000024.h5" || fail "resumed FedSpeed run differs"
# FedAvg runs the same way and ends elsewhere.
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/avg" --set optim.momentum=0 \
  --set train.eval_every=12 --set 'algorithms=[{fedavg: {clients: 6, participation: 0.34, local_steps: 3, dirichlet_alpha: 0.3}}]'
if cmp "$WORK/full/ckpt_000000024.h5" "$WORK/avg/ckpt_000000024.h5" > /dev/null; then fail "FedAvg equals FedSpeed"; fi
# Steps must be whole rounds; every rank needs as many active clients.
run_expect 2 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/bad" \
  --set 'algorithms=[{fedspeed: {clients: 4, local_steps: 5}}]'
expect_contains "$WORK/o" "train.steps: is 24"
run_expect 2 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/bad" \
  --set 'algorithms=[{fedspeed: {clients: 5, split: domain, local_steps: 4}}]'
expect_contains "$WORK/o" "algorithms.fedspeed.participation"
# FedSpeed's perturbed pass and SAGM's would overwrite the same gradients: refused.
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/bad" \
  --set 'algorithms=[{fedspeed: {clients: 2, local_steps: 6}}, sagm]'
expect_contains "$WORK/o" "both claim second_pass"
# 100 clients on 2 ranks, 10% participation: 5 clients per rank per round.
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/many" --set train.steps=20 \
  --set train.eval_every=10 --set 'algorithms=[{fedspeed: {clients: 100, participation: 0.1, local_steps: 2}}]'
"$PYTHON" -c "
import json, sys
p = json.loads(open(sys.argv[1]).readlines()[-1])['plugins']
assert p['active_clients'] == 10 and p['round'] == 2, p
print('100 clients ok')" "$WORK/many/metrics.jsonl"
# One client per domain: 5 training domains as 5 virtual clients in one process.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/domain" --set train.steps=20 \
  --set train.eval_every=20 --set 'algorithms=[{fedspeed: {clients: 5, split: domain, local_steps: 2}}]'
echo "1 passed, 0 failed"
