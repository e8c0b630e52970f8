#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for CI and for trying the SLURM profile.
#
#   bash scripts/slurm_local.sh start    # install (Debian packages) if missing, configure, start; idempotent
#   bash scripts/slurm_local.sh status   # exit 0 when the controller answers and the node takes jobs
#   bash scripts/slurm_local.sh stop     # stop the daemons this script started, by PID; restore slurm.conf
#
# munged, slurmctld and slurmd run as daemons with PID files; no systemd needed. The cluster has
# one node (this host, `hostname -s`), one partition `debug` (the default), no GPUs (no GRES) and no
# accounting database (accounting_storage/none), so `sacct` cannot report jobs: Snakemake's SLURM
# executor must use `squeue` for status checks (profiles/slurm-ci sets that). MinJobAge is an hour,
# so `squeue --states=all` still lists a finished job when Snakemake asks.
#
# The config must be /etc/slurm/slurm.conf: the Snakemake job-step plugin drops SLURM_* variables
# (SLURM_CONF too) before it calls `srun`, so a config elsewhere is lost inside the job.
# The script refuses to overwrite a slurm.conf it did not write (GANBENCH_SLURM_FORCE=1 overrides).
# Needs root.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# Written by ganbench scripts/slurm_local.sh"
BACKUP=$CONF.ganbench-saved              # the machine's own slurm.conf while ours is in place
RUN=/run/ganbench-slurm                 # our PID files; a daemon is ours when its PID file is here
LOGDIR=/var/log/slurm
STATE=/var/lib/slurm
PACKAGES=(munge slurmctld slurmd slurm-client)
NODE=$(hostname -s)

log() { echo "slurm_local: $*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts daemons)"; }

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    # policy-rc.d (containers) or a missing init system stop the packages' own service starts;
    # either way this script starts the daemons itself.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

alive() {  # alive NAME: the PID in $RUN/NAME.pid is a running NAME (not a recycled PID)
  local f=$RUN/$1.pid pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

write_conf() {  # prints the config this machine should have
  local hw mem_total real_mem
  # Topology as slurmd itself sees it, so that the node never registers with fewer CPUs than configured.
  hw=$(slurmd -C | head -n1 | sed -e 's/^NodeName=[^ ]* //' -e 's/ RealMemory=[0-9]*//')
  mem_total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  # Leave the OS, the Snakemake driver and the daemons 10% (at least 1 GiB).
  real_mem=$(( mem_total - (mem_total / 10 > 1024 ? mem_total / 10 : 1024) ))
  cat <<EOF
$MARK: a single-node test cluster.
# Regenerated on every 'start'; edit the script, not this file.
ClusterName=ganbench
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups needed: plain process tracking; tasks are bound to their allocated CPUs.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# No accounting database: sacct has nothing to report, use squeue for job status.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to 'squeue --states=all' for an hour.
MinJobAge=3600
# scancel: SIGTERM, then SIGKILL 5 s later.
KillWait=5
ReturnToService=2
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
MessageTimeout=10
NodeName=$NODE NodeAddr=127.0.0.1 $hw RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n1; }

healthy() {
  alive munged && alive slurmctld && alive slurmd || return 1
  scontrol ping 2>/dev/null | grep -q "is UP" || return 1
  case "$(node_state)" in idle*|mixed*|allocated*|completing*) return 0 ;; *) return 1 ;; esac
}

stop_daemons() {  # stop_daemons NAME...: SIGTERM the PIDs in our PID files together, SIGKILL after 10 s
  local name pid i pids=() names=()
  for name in "$@"; do
    if alive "$name"; then pids+=("$(cat "$RUN/$name.pid")"); names+=("$name"); fi
  done
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local left
    for i in $(seq 1 100); do
      left=0
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
      [ $left -eq 0 ] && break
      sleep 0.1
    done
    for i in "${!pids[@]}"; do
      if kill -0 "${pids[$i]}" 2>/dev/null; then
        log "${names[$i]} (${pids[$i]}) ignored SIGTERM for 10 s; SIGKILL"
        kill -KILL "${pids[$i]}" 2>/dev/null || true
      fi
      log "stopped ${names[$i]} (${pids[$i]})"
    done
  fi
  for name in "$@"; do rm -f "$RUN/$name.pid"; done
}

cmd_stop() {
  need_root
  # Jobs left in the cluster would outlive slurmd (their slurmstepd keeps running): cancel them first.
  if alive slurmctld && alive slurmd; then
    local jobs i
    jobs=$(squeue -h -t PENDING,RUNNING,SUSPENDED -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      log "cancelling jobs: $(echo $jobs)"
      scancel $jobs 2>/dev/null || true
      for i in $(seq 1 150); do [ -z "$(squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break; sleep 0.1; done
    fi
  fi
  stop_daemons slurmd slurmctld munged
  restore_conf
}

restore_conf() {
  # Leave the machine's SLURM configuration as it was: with our slurm.conf in place, every SLURM
  # client (Snakemake's SLURM executor plugin at import, for one) waits on a controller that is gone.
  if [ -e "$CONF" ] && head -n1 "$CONF" | grep -qF "$MARK"; then
    if [ -e "$BACKUP" ]; then mv "$BACKUP" "$CONF"; log "restored the machine's $CONF"; else rm -f "$CONF"; log "removed $CONF"; fi
  fi
}

cmd_status() {
  local ok=0 d
  for d in munged slurmctld slurmd; do
    if alive "$d"; then echo "$d: running (pid $(cat "$RUN/$d.pid"))"; else echo "$d: not running"; ok=1; fi
  done
  if command -v sinfo >/dev/null && [ $ok -eq 0 ]; then
    scontrol ping 2>/dev/null || ok=1
    sinfo 2>/dev/null || ok=1
    healthy || ok=1
  fi
  return $ok
}

start_munge() {
  alive munged && return 0
  if [ -S /run/munge/munge.socket.2 ] && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "a munged not started by this script is running; using it"
    return 0
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  # munged writes its PID file as the munge user: point it at a munge-owned folder, link ours to it.
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/ganbench-munged.pid
  ln -sf /run/munge/ganbench-munged.pid "$RUN/munged.pid"
  local i
  for i in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "munged did not come up (see /var/log/munge/munged.log)"
}

cmd_start() {
  need_root
  local t0=$SECONDS
  install_packages
  install -d -m 0755 "$RUN" /etc/slurm "$LOGDIR" "$STATE/slurmctld" "$STATE/slurmd"

  local want
  want=$(write_conf)
  if [ -e "$CONF" ] && ! head -n1 "$CONF" | grep -qF "$MARK" && [ "${GANBENCH_SLURM_FORCE:-0}" != 1 ]; then
    die "$CONF was not written by this script; refusing to replace it (GANBENCH_SLURM_FORCE=1 to override)"
  fi
  if [ "$(cat "$CONF" 2>/dev/null)" = "$want" ] && healthy; then
    log "already running (node $NODE, partition debug)"
    return 0
  fi
  if [ "$(cat "$CONF" 2>/dev/null)" != "$want" ]; then
    # A forced replacement keeps the machine's own config, which stop puts back.
    if [ -e "$CONF" ] && ! head -n1 "$CONF" | grep -qF "$MARK" && [ ! -e "$BACKUP" ]; then cp -p "$CONF" "$BACKUP"; fi
    printf '%s\n' "$want" > "$CONF"
    # A changed config: restart the SLURM daemons so that they read it.
    stop_daemons slurmd slurmctld
  fi

  start_munge
  # -c: start from a clean state (no jobs or node states left over from an earlier run).
  alive slurmctld || { rm -f "$RUN/slurmctld.pid"; slurmctld -c; }
  alive slurmd || { rm -f "$RUN/slurmd.pid"; slurmd; }

  local i st=""
  for i in $(seq 1 300); do
    st=$(node_state)
    case "$st" in
      idle*|mixed*|allocated*) break ;;
      down*|drain*|fail*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.1
  done
  healthy || { cmd_status >&2 || true; tail -n 20 "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log" >&2 || true
               die "the cluster did not come up (node state: '${st:-none}')"; }
  log "running: node $NODE ($(nproc) CPUs), partition debug, in $(( SECONDS - t0 )) s"
}

case "${1:-}" in
  -h|--help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
