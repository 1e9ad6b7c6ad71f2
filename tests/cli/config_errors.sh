# Bad input fails before training, exit code 2 (config) or 1 (data), naming key/file.
source "$(dirname "$0")/common.sh" "$@"

printf 'optim:\n  lrr: 0.1\n' > "$WORK/typo.yaml"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" -c "$WORK/typo.yaml"
expect_contains "$WORK/o" "optim.lrr: unknown key; did you mean 'optim.lr'?"
expect_contains "$WORK/o" "typo.yaml"

run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set train.steps=ten
expect_contains "$WORK/o" "train.steps: expected an integer, got 'ten'"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set data.holdout_fraction=1.5
expect_contains "$WORK/o" "data.holdout_fraction: must be in (0, 1)"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set 'algorithms=[mixpu]'
expect_contains "$WORK/o" "unknown algorithm 'mixpu'; did you mean 'mixup'?"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set 'data.test_domains=[rot_00]'
expect_contains "$WORK/o" "'rot_00' is not a domain"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set model.name=vgg
expect_contains "$WORK/o" "model.name: 'vgg' is not one of: mlp, cnn, resnet18"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/missing.yaml"
expect_contains "$WORK/o" "missing.yaml: cannot open config file"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --bogus
expect_contains "$WORK/o" "unrecognised option '--bogus'"
run_expect 1 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set data.path="$WORK/none.h5"
expect_contains "$WORK/o" "none.h5: file not found"
echo "not hdf5" > "$WORK/junk.h5"
run_expect 1 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set data.path="$WORK/junk.h5"
expect_contains "$WORK/o" "junk.h5: not an HDF5 file"
run_expect 2 "$WORK/o" -- "$OODTRAIN" data prepare rotated-mnist --out "$WORK"
expect_contains "$WORK/o" "did you mean 'rotated-fmnist'"
[ ! -d "$WORK/run" ] || fail "a failed set-up must not create the run dir"
echo "1 passed, 0 failed"
