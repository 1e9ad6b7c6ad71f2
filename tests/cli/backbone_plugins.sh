# Every plugin on every pretrained-architecture backbone, through module surgery: a few steps
# on 2 ranks at small size (the real layer structure, narrow widths, 28-pixel inputs).
#   resnet50:     multi-sample dropout (head), ghost BN (every BN), LSQ + GAQAT (convs, linears),
#                 soup candidates with BN recalibration, a greedy soup of checkpoints
#   vit_b16:      SSA (attention kernels), LSQ, multi-sample dropout
#   clip_vit_b32: SSA, LSQ, multi-sample dropout, WiSE-FT interpolation of two checkpoints
source "$(dirname "$0")/common.sh" "$@"
np=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")
short=(--set train.steps=3 --set train.eval_every=3 --set train.checkpoint_every=3)
R50='model={name: resnet50, stem: cifar, width: 4, dropout: 0.2}'
VIT='model={name: vit_b16, patch: 7, dim: 32, depth: 2, heads: 2, dropout: 0.2}'
CLIP='model={name: clip_vit_b32, patch: 7, dim: 32, depth: 2, heads: 2, embed_dim: 16, normalize_features: true, dropout: 0.2}'
train() {  # train NAME MODEL ALGORITHMS [more args]
  local name=$1 model=$2 algos=$3; shift 3
  run_expect 0 "$WORK/o" -- "${np[@]}" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/$name" \
    --set "$model" --set "algorithms=$algos" "$@"
  expect_contains "$WORK/o" "rot_0          held-out"
}
has() {  # has CHECKPOINT NAME...: the checkpoint holds these model entries
  "$PYTHON" - "$@" <<'PY'
import sys, h5py
m = h5py.File(sys.argv[1])["model"]
missing = [n for n in sys.argv[2:] if n not in m]
assert not missing, missing
PY
}

train r50_msd "$R50" '[{multi_sample_dropout: {samples: 4}}]'
train r50_gbn "$R50" '[{ghost_batch_norm: {size: 4}}]'
train r50_qat "$R50" '[{lsq: {weight_bits: 4, input_bits: 4}}, {gaqat: {rho: 0.05, interval: 1, window: 2}}]'
has "$WORK/r50_qat/ckpt_000000003.h5" trunk.conv1.weight_step trunk.layer4.2.conv3.input_step head.fc.weight_step
train r50_soup "$R50" '[{soup_ingredients: {merge: greedy, lr_scale: [1.0, 0.5]}}]' --init-from "$WORK/r50_msd/ckpt_000000003.h5"
expect_contains "$WORK/o" "the final evaluation below is the greedy soup's"
run_expect 0 "$WORK/o" -- "${np[@]}" soup --method greedy --checkpoints "$WORK/r50_msd/ckpt_000000003.h5" \
  "$WORK/r50_gbn/ckpt_000000003.h5" --val "$WORK/tiny.yaml" --recalibrate-batches 2 --out "$WORK/r50_soup.h5"
expect_contains "$WORK/o" "greedy soup of"

train vit_ssa "$VIT" '[{ssa: {ratio: 2, pattern: uniform}}]'
train vit_qat "$VIT" '[lsq, {multi_sample_dropout: {samples: 2}}]'
has "$WORK/vit_qat/ckpt_000000003.h5" trunk.blocks.1.attn.qkv.weight_step trunk.patch.proj.weight_step

train clip_ssa "$CLIP" '[{ssa: {ratio: 2, pattern: local, block: 4}}, {multi_sample_dropout: {samples: 2}}]'
train clip_qat "$CLIP" '[lsq]' --init-from "$WORK/clip_ssa/ckpt_000000003.h5"
has "$WORK/clip_qat/ckpt_000000003.h5" trunk.embed.conv1.weight_step trunk.blocks.0.fc2.input_step
train clip_ft "$CLIP" '[]' --init-from "$WORK/clip_ssa/ckpt_000000003.h5"
run_expect 0 "$WORK/o" -- "${np[@]}" interpolate --zero-shot "$WORK/clip_ssa/ckpt_000000003.h5" \
  --finetuned "$WORK/clip_ft/ckpt_000000003.h5" --alphas 0:1:0.5 --eval "$WORK/tiny.yaml" --out "$WORK/wise"
[ "$(wc -l < "$WORK/wise/interpolation.csv")" -eq 4 ] || fail "expected 3 alphas"
echo "backbone plugins ok"
