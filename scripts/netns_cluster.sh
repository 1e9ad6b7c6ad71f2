#!/bin/bash
# A cluster of N "hosts" on this machine, made of Linux network namespaces, for running
# oodtrain under mpirun the way it runs on several nodes: TCP between hosts, one hostname
# per host, Open MPI's rsh launcher. Needs root (ip netns, unshare) and iproute2.
#
#   scripts/netns_cluster.sh up N          N hosts oodt-h0..oodt-h{N-1} on 10.231.0.0/24
#   scripts/netns_cluster.sh run -- ARGS   mpirun ARGS across the hosts (from inside oodt-h0)
#   scripts/netns_cluster.sh exec K CMD... CMD in host K's namespace (with its hostname)
#   scripts/netns_cluster.sh link K up|down  host K's network link
#   scripts/netns_cluster.sh shape RATE|off  every host sends at most RATE (tc tbf: 1gbit, 10gbit)
#   scripts/netns_cluster.sh down          removes everything `up` made; safe to repeat
#
# Layout: host K is namespace oodt-hK with interface eth0 = 10.231.0.(10+K)/24 and loopback,
# and no other route: it can reach the other hosts and nothing else. Its veth peer (vhK)
# sits on bridge br0 inside namespace oodt-net, which has no address and no uplink, so the
# network exists only between the hosts made here. The filesystem is shared, so the same
# binary, data and run directories work on every host.
#
# Hostnames: namespaces share the UTS name (the machine's hostname) unless unshared; every
# command run on host K goes through `unshare --uts` and sets hostname oodt-hK, so Open MPI
# sees K different nodes (MPI_COMM_TYPE_SHARED splits by them). /etc/netns/oodt-hK/hosts
# (bind-mounted over /etc/hosts by `ip netns exec`) resolves the names to the addresses.
#
# Environment: OODT_NETNS_DIR (state: hostfile, agent; default /tmp/oodt-netns),
# OODT_NETNS_SLOTS (ranks per host in the hostfile; default 1), MPIRUN (default mpirun).
set -euo pipefail

PREFIX=oodt-h
NETNS=oodt-net
SUBNET=10.231.0
STATE=${OODT_NETNS_DIR:-/tmp/oodt-netns}
MPIRUN=${MPIRUN:-mpirun}

die() { echo "netns_cluster: $*" >&2; exit 1; }
addr() { echo "$SUBNET.$((10 + $1))"; }
hosts() { ip netns list 2> /dev/null | awk '{print $1}' | grep -E "^${PREFIX}[0-9]+$" | sort -V || true; }

cmd_down() {
  local h
  for h in $(hosts); do
    # Processes still in the namespace (an orphaned orted or rank) would keep it alive.
    ip netns pids "$h" 2> /dev/null | xargs -r kill -KILL 2> /dev/null || true
    ip netns del "$h" 2> /dev/null || true
    rm -rf "/etc/netns/$h"
  done
  rm -rf /etc/netns/${PREFIX}[0-9]* 2> /dev/null || true
  if ip netns list 2> /dev/null | awk '{print $1}' | grep -qx "$NETNS"; then
    ip netns del "$NETNS" 2> /dev/null || true
  fi
  rmdir /etc/netns 2> /dev/null || true  # only when empty: someone else's may be there
  rm -rf "$STATE"
}

cmd_up() {
  local n=${1:-}
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "up N: N hosts, 1..200"
  [ "$(id -u)" -eq 0 ] || die "needs root (ip netns)"
  [ -z "$(hosts)" ] || die "a cluster is up already (hosts: $(hosts | tr '\n' ' ')); run 'down' first"
  local slots=${OODT_NETNS_SLOTS:-1}
  # Half-made state is removed before the error is reported.
  trap 'echo "netns_cluster: up failed; tearing down" >&2; cmd_down' ERR
  mkdir -p "$STATE"
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" link add br0 type bridge
  ip -n "$NETNS" link set br0 up
  : > "$STATE/hostfile"
  local hostsfile="$STATE/hosts" k h
  printf '127.0.0.1 localhost\n' > "$hostsfile"
  for ((k = 0; k < n; k++)); do printf '%s %s%d\n' "$(addr $k)" "$PREFIX" "$k" >> "$hostsfile"; done
  for ((k = 0; k < n; k++)); do
    h=$PREFIX$k
    ip netns add "$h"
    # Made in the private namespace so the names never clash with the machine's interfaces.
    ip -n "$NETNS" link add "vh$k" type veth peer name eth0 netns "$h"
    ip -n "$NETNS" link set "vh$k" master br0 up
    ip -n "$h" link set lo up
    ip -n "$h" addr add "$(addr $k)/24" dev eth0
    ip -n "$h" link set eth0 up
    mkdir -p "/etc/netns/$h"
    cp "$hostsfile" "/etc/netns/$h/hosts"
    echo "$h slots=$slots" >> "$STATE/hostfile"
  done
  # Open MPI's rsh launcher calls AGENT HOST COMMAND...; ssh would join COMMAND with spaces
  # and hand it to a shell on HOST, and so does this.
  cat > "$STATE/agent" << 'AGENT'
#!/bin/sh
host=$1; shift
exec ip netns exec "$host" unshare --uts sh -c "hostname $host && exec $*"
AGENT
  chmod +x "$STATE/agent"
  trap - ERR
  # Every host answers on the private network before anyone launches on it: a TCP connect
  # to a closed port is refused (a reset came back) when the host is reachable.
  # Links take a moment to come up (carrier, bridge port): up to 10 s.
  local tries out
  for ((k = 1; k < n; k++)); do
    for ((tries = 0; ; tries++)); do
      out=$(ip netns exec "${PREFIX}0" timeout 2 bash -c "exec 3<> /dev/tcp/$(addr $k)/9" 2>&1 || true)
      [[ "$out" == *"Connection refused"* ]] && break
      [ "$tries" -lt 20 ] || { cmd_down; die "host $k does not answer on $(addr $k)"; }
      sleep 0.5
    done
  done
  echo "netns_cluster: $n host(s) up on $SUBNET.0/24; hostfile $STATE/hostfile"
}

cmd_exec() {
  local k=$1; shift
  exec ip netns exec "$PREFIX$k" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$PREFIX$k" "$@"
}

cmd_run() {
  [ -f "$STATE/hostfile" ] || die "no cluster up (run 'up N' first)"
  [ "${1:-}" = "--" ] && shift
  # mpirun runs on host 0, so its daemons on the other hosts reach it over the private
  # network; vader (shared memory) is left out: ranks on different hosts must not share
  # memory segments even though this kernel would let them.
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  cmd_exec 0 "$MPIRUN" --hostfile "$STATE/hostfile" \
    --mca plm_rsh_agent "$STATE/agent" \
    --mca btl tcp,self --mca btl_tcp_if_include "$SUBNET.0/24" \
    --mca oob_tcp_if_include "$SUBNET.0/24" "$@"
}

cmd_link() {
  local k=$1 state=$2
  [[ "$state" = up || "$state" = down ]] || die "link K up|down"
  ip -n "$PREFIX$k" link set eth0 "$state"
}

# Each host's eth0 sends at most RATE (a token bucket, tc tbf), like a full-duplex NIC of that
# line rate: a ring all-reduce sends and receives at once, each direction limited by the
# sender's shaper. The bucket holds 1 ms at the rate, and at least 256 KiB: veth hands tbf
# segmentation-offload packets of up to 64 KiB, which a smaller bucket would drop. No added
# latency: this kernel has no netem (see docs/multinode.md).
cmd_shape() {
  local rate=$1 k bytes burst
  for k in $(hosts); do
    ip -n "$k" link show eth0 > /dev/null 2>&1 || die "no host $k"
    if [ "$rate" = off ]; then
      tc -n "$k" qdisc del dev eth0 root 2> /dev/null || true
      continue
    fi
    bytes=$(tc_rate_bytes "$rate") || die "rate '$rate': a number with kbit, mbit or gbit"
    burst=$(( bytes / 1000 > 262144 ? bytes / 1000 : 262144 ))
    tc -n "$k" qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms \
      || die "tc tbf on $k failed"
  done
}
# RATE (e.g. 10gbit) in bytes per second.
tc_rate_bytes() {
  local v=${1%[kmg]bit} unit=${1: -4}
  [[ "$v" =~ ^[0-9]+$ ]] || return 1
  case "$unit" in kbit) echo $(( v * 1000 / 8 )) ;; mbit) echo $(( v * 1000000 / 8 )) ;;
    gbit) echo $(( v * 1000000000 / 8 )) ;; *) return 1 ;; esac
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  run) shift; cmd_run "$@" ;;
  exec) shift; [ $# -ge 2 ] || die "exec K CMD..."; cmd_exec "$@" ;;
  link) shift; [ $# -eq 2 ] || die "link K up|down"; cmd_link "$@" ;;
  shape) shift; [ $# -eq 1 ] || die "shape RATE|off"; cmd_shape "$@" ;;
  hostfile) echo "$STATE/hostfile" ;;
  *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
