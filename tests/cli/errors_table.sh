# Every row of the table in docs/errors.md: the command fails with that exit code and output.
source "$(dirname "$0")/common.sh" "$@"
TINY="$WORK/tiny.yaml"
export OODTRAIN TINY DATA PYTHON
rows=0
failed=0
while IFS= read -r line; do
  # | input | `command` | exit | `error` |
  input=$(echo "$line" | awk -F' [|] ' '{print $1}' | sed 's/^| //')
  cmd=$(echo "$line" | sed -E 's/^\| [^|]* \| `(.*)` \| ([0-9]+) \| `(.*)` \|$/\1/')
  code=$(echo "$line" | sed -E 's/^\| [^|]* \| `(.*)` \| ([0-9]+) \| `(.*)` \|$/\2/')
  want=$(echo "$line" | sed -E 's/^\| [^|]* \| `(.*)` \| ([0-9]+) \| `(.*)` \|$/\3/')
  rows=$((rows + 1))
  dir="$WORK/row$rows"
  mkdir -p "$dir"
  # Each row its own run folder: a run folder holds one run.
  sed "s|dir: $WORK/run|dir: $dir/run|" "$WORK/tiny.yaml" > "$dir/tiny.yaml"
  TINY="$dir/tiny.yaml"
  set +e
  (cd "$dir" && timeout 120 bash -c "$cmd") > "$dir/out" 2>&1
  got=$?
  set -e
  if [ "$got" -ne "$code" ] || ! grep -qF -- "$want" "$dir/out"; then
    echo "FAIL row $rows ($input): exit $got (want $code), output:"
    tail -5 "$dir/out"
    failed=$((failed + 1))
  fi
done < <(sed -n '/<!-- errors-table: begin -->/,/<!-- errors-table: end -->/p' "$SRC/../docs/errors.md" | grep '^| [^-]' | tail -n +2)
[ "$rows" -ge 25 ] || fail "read only $rows rows from docs/errors.md"
echo "$((rows - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
