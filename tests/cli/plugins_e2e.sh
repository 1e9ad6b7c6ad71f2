# Every plugin for a few steps on 2 ranks, end to end (set-up, training, evaluation, checkpoint),
# and the forward-phase plugins' config errors agreed on every rank.
source "$(dirname "$0")/common.sh" "$@"
np=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")
short=(--set train.steps=6 --set train.eval_every=6 --set train.checkpoint_every=3)

run_expect 0 "$WORK/o" -- "${np[@]}" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/msd" \
  --set 'algorithms=[{multi_sample_dropout: {samples: 4}}, label_smoothing]' --set model.dropout=0.3
run_expect 0 "$WORK/o" -- "${np[@]}" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/gbn" \
  --set 'algorithms=[{ghost_batch_norm: {size: 5, running_stats: scaled}}]'
run_expect 0 "$WORK/o" -- "${np[@]}" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/ssa_vit" \
  --set 'model={name: vit, patch: 4, dim: 16, depth: 1, heads: 2}' \
  --set 'algorithms=[{ssa: {ratio: 4, pattern: local, block: 8, eval: ensemble, eval_passes: 2}}]'
expect_contains "$WORK/o" "rot_0          held-out"

# A causal byte-level LM with SSA on a text file.
cat "$SRC"/../docs/*.md > "$WORK/corpus.txt"
run_expect 0 "$WORK/o" -- "${np[@]}" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/lm" \
  --set "data={type: text, path: $WORK/corpus.txt, seq_len: 32, batch_size: 4}" \
  --set 'model={name: transformer_lm, dim: 16, depth: 1, heads: 2}' \
  --set 'algorithms=[{ssa: {ratio: 2}}]'
expect_contains "$WORK/o" "corpus         train"
"$PYTHON" -c "import h5py,sys; f=h5py.File(sys.argv[1]); assert 'trunk.blocks.0.attn.qkv.weight' in f['model']" \
  "$WORK/lm/ckpt_000000006.h5"

# Config errors of these plugins fail every rank together.
set +e
timeout 60 "${np[@]}" train -c "$WORK/tiny.yaml" --set 'algorithms=[{ghost_batch_norm: {size: 64}}]' > "$WORK/o" 2>&1
code=$?
set -e
[ "$code" -ne 0 ] && [ "$code" -ne 124 ] || fail "exit $code"
for r in 0 1; do expect_contains "$WORK/o" "[rank $r/2]: algorithms.ghost_batch_norm.size: ghost batch size 64 exceeds"; done
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set 'algorithms=[ssa]'
expect_contains "$WORK/o" "has no attention layers"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set 'algorithms=[multi_sample_dropout]' --set model.dropout=0
expect_contains "$WORK/o" "has no dropout"
echo "1 passed, 0 failed"
