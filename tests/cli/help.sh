# Help texts: positional arguments are listed as bare words, never as --options; every action
# and command is listed.
source "$(dirname "$0")/common.sh" "$@"
# no_option_line FILE NAME: no line of FILE offers --NAME as an option.
no_option_line() { if grep -qE -- "^ +(-[a-z], )?--$2( |\$)" "$1"; then cat "$1"; fail "--$2 listed as an option in $1"; fi; }

run_expect 0 "$WORK/sweep" -- "$OODTRAIN" sweep --help
expect_contains "$WORK/sweep" "slurm"
expect_contains "$WORK/sweep" "positional arguments:"
grep -qE '^  action +plan \| run \| status \| slurm$' "$WORK/sweep" || { cat "$WORK/sweep"; fail "sweep action line"; }
grep -qE '^  sweep +the sweep file' "$WORK/sweep" || { cat "$WORK/sweep"; fail "sweep file line"; }
no_option_line "$WORK/sweep" action
no_option_line "$WORK/sweep" sweep
grep -qE -- '^ +--parallel ' "$WORK/sweep" || { cat "$WORK/sweep"; fail "options must still be listed"; }

run_expect 0 "$WORK/collect" -- "$OODTRAIN" collect --help
grep -qE '^  dirs \.\.\. ' "$WORK/collect" || { cat "$WORK/collect"; fail "collect dirs line"; }
no_option_line "$WORK/collect" dirs

run_expect 0 "$WORK/eval" -- "$OODTRAIN" eval --help
grep -qE '^  checkpoints \.\.\. ' "$WORK/eval" || { cat "$WORK/eval"; fail "eval checkpoints line"; }
no_option_line "$WORK/eval" checkpoints
grep -qE -- '^ +-c \[ --config \] ' "$WORK/eval" || { cat "$WORK/eval"; fail "eval -c option"; }

run_expect 0 "$WORK/export" -- "$OODTRAIN" export --help
no_option_line "$WORK/export" checkpoint
run_expect 0 "$WORK/data" -- "$OODTRAIN" data prepare --help
no_option_line "$WORK/data" name
# A command without positional arguments prints no such section.
run_expect 0 "$WORK/train" -- "$OODTRAIN" train --help
if grep -q "positional arguments" "$WORK/train"; then fail "train has no positional arguments"; fi
# The command list names eval and sweep's slurm action.
run_expect 0 "$WORK/top" -- "$OODTRAIN" --help
expect_contains "$WORK/top" "  eval "
expect_contains "$WORK/top" "plan | run | status | slurm"
# Positional words still parse as before.
run_expect 2 "$WORK/o" -- "$OODTRAIN" sweep dance "$WORK/none.yaml"
expect_contains "$WORK/o" "'dance' is not one of: plan, run, status, slurm"
run_expect 2 "$WORK/o" -- "$OODTRAIN" eval
expect_contains "$WORK/o" "oodtrain eval: the argument 'checkpoints' is missing"
run_expect 2 "$WORK/o" -- "$OODTRAIN" sweep plan
expect_contains "$WORK/o" "oodtrain sweep: the argument 'sweep' is missing"
echo "help ok"
