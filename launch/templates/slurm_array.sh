#!/bin/bash
# Written by `oodtrain sweep slurm {{sweep_file}}`: one array task per run of the sweep.
#SBATCH --job-name=oodt-{{name}}
#SBATCH --array=0-{{last_index}}{{max_parallel}}
#SBATCH --ntasks={{ntasks}}
#SBATCH --time={{time}}
{{partition_line}}#SBATCH --signal=B:USR1@{{signal_seconds}}
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output={{slurm_dir}}/%A_%a.out
set -u
dir=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" '{{slurm_dir}}/runs.txt')
[ -e "$dir/done" ] && exit 0
rm -f "$dir/failed" "$dir/stopped"
echo "slurm ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" > "$dir/running"
# Slurm signals this shell (B:); pass it on to the ranks, which stop at an agreed step.
child=
forward() { [ -n "$child" ] && kill -USR1 "$child" 2> /dev/null; }
trap forward USR1 TERM
{{launcher}}'{{oodtrain}}' train -c "$dir/config.yaml" --resume >> "$dir/log.txt" 2>&1 &
child=$!
while :; do wait "$child"; code=$?; kill -0 "$child" 2> /dev/null || break; done
rm -f "$dir/running"
case $code in
  0) echo ok > "$dir/done" ;;
  {{requeue_code}}) echo "stopped by a signal with a checkpoint; requeued" > "$dir/stopped"
      scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" ;;
  *) echo "exit $code: $(grep -a error "$dir/log.txt" | tail -n 1)" > "$dir/failed" ;;
esac
exit $code
