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
# Before the time limit Slurm sends USR1 to this shell only (B:); pass it on to the launcher,
# which forwards it to the ranks: they stop at an agreed step with a checkpoint (exit 75) and
# the task requeues itself. On `scancel`, at the time limit itself, or on preemption, Slurm
# sends TERM to every process of the job, the ranks included: they stop the same way within
# KillWait and the run writes `stopped` itself, but Slurm decides what becomes of the job
# (cancelled stays cancelled; a preempted job is requeued by Slurm), so no requeue here.
child= got=
forward() { got=$1; [ -n "$child" ] && kill -USR1 "$child" 2> /dev/null; }
trap 'forward USR1' USR1
trap 'forward TERM' TERM
{{launcher}}'{{oodtrain}}' train -c "$dir/config.yaml" --resume >> "$dir/log.txt" 2>&1 &
child=$!
while :; do wait "$child"; code=$?; kill -0 "$child" 2> /dev/null || break; done
rm -f "$dir/running"
# mpirun signalled itself exits 1 even when its ranks stopped cleanly: the run's mark decides.
[ "$code" -ne 0 ] && [ -e "$dir/stopped" ] && code={{requeue_code}}
case $code in
  0) echo ok > "$dir/done" ;;
  {{requeue_code}}) [ "$got" = TERM ] || scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" ;;
  *) echo "exit $code: $(grep -a error "$dir/log.txt" | tail -n 1)" > "$dir/failed" ;;
esac
exit $code
