#!/usr/bin/env bash
# A real single-node Slurm for the tests (slurmctld + slurmd + munge, as root, no systemd):
#   scripts/slurm_local.sh start|stop|status
# Config, state and logs live in $OODT_SLURM_DIR (default /tmp/oodt-slurm); clients find the
# config through SLURM_CONF, which `start` prints and scripts/test.sh exports. Based on the
# recipe in ../shared/docs/slurm-local.md (Slurm 22.05, Debian 12).
set -euo pipefail
DIR=${OODT_SLURM_DIR:-/tmp/oodt-slurm}
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

start() {
  [ "$(id -u)" -eq 0 ] || { echo "slurm_local: needs root" >&2; exit 1; }
  stop > /dev/null 2>&1 || true
  rm -rf "$DIR"
  mkdir -p "$DIR"/{state/ctld,state/spool,log,pid}
  # munge: a key and a running daemon.
  if ! munge -n 2>/dev/null | unmunge > /dev/null 2>&1; then
    [ -f /etc/munge/munge.key ] || mungekey --create > /dev/null
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge > /dev/null 2>&1 && break; sleep 0.1; done
  fi
  # The node line as slurmd sees this machine, named localhost, with 5% of the memory held back.
  local node
  node=$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]*/NodeName=localhost NodeAddr=127.0.0.1/' \
    | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^RealMemory=/) { split($i, a, "="); $i = "RealMemory=" int(a[2] * 0.95) } print}')
  cat > "$CONF" <<CONF
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/spool
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPidFile=$DIR/pid/slurmctld.pid
SlurmdPidFile=$DIR/pid/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MailProg=/bin/true
ReturnToService=2
KillWait=5
$node
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  setsid slurmctld -D -f "$CONF" > "$DIR/log/slurmctld.out" 2>&1 < /dev/null &
  setsid slurmd -D -N localhost -f "$CONF" > "$DIR/log/slurmd.out" 2>&1 < /dev/null &
  for _ in $(seq 150); do
    [ "$(sinfo -h -N -o %T 2>/dev/null | head -1)" = "idle" ] && { echo "export SLURM_CONF=$CONF"; return 0; }
    sleep 0.2
  done
  echo "slurm_local: the node did not become idle; logs in $DIR/log" >&2
  tail -5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
  exit 1
}

stop() {
  [ -f "$CONF" ] || return 0
  scancel --user=root 2> /dev/null || true
  for _ in $(seq 100); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  for p in slurmd slurmctld; do
    [ -f "$DIR/pid/$p.pid" ] && kill "$(cat "$DIR/pid/$p.pid")" 2> /dev/null || true
  done
  sleep 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
