# slurm_ci.sh -- a throw-away single-node Slurm cluster for CI (Debian's slurm-wlm and
# munge, daemons started directly: no systemd). Source it, then:
#
#   slurm_ci_install    # apt-get install slurm-wlm munge (no-op when present)
#   slurm_ci_start      # exports SLURM_CI_DIR and SLURM_CONF; returns when the node is idle
#   trap slurm_ci_stop EXIT
#
# Needs root. Everything (slurm.conf, state, spool, logs, pid files, munge key and socket)
# lives in $SLURM_CI_DIR; nothing in /etc is written. The settings that matter: 1 s
# scheduling ticks (batch_sched_delay=0), kill_invalid_depend (in DependencyParameters, not
# SchedulerParameters), no accounting database, finished jobs queryable for an hour
# (MinJobAge), large arrays allowed (docs/cluster.md, "Trying it on one machine").

slurm_ci_install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return 0
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
}

# True when PID $1 runs and is not a zombie (PID 1 may reap late, so kill -0 is not enough).
_slurm_ci_alive() {
  case "$(ps -o stat= -p "$1" 2>/dev/null || true)" in ""|Z*) return 1 ;; *) return 0 ;; esac
}

slurm_ci_start() {
  export SLURM_CI_DIR="${SLURM_CI_DIR:-$(mktemp -d /tmp/slurm-ci.XXXXXX)}"
  export SLURM_CONF="$SLURM_CI_DIR/slurm.conf"
  local D="$SLURM_CI_DIR" port node hw
  # A second cluster on taken ports would fail to bind while sinfo answers from the first.
  for port in 6817 6818; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "slurm_ci_start: port $port is already in use (another slurmctld or slurmd?)" >&2
      return 1
    fi
  done
  mkdir -p "$D/state" "$D/spool" "$D/log" "$D/run" "$D/munge"
  chmod 755 "$D" "$D/munge"   # munged wants a world-executable socket directory
  head -c 1024 /dev/urandom > "$D/munge/munge.key"
  chmod 400 "$D/munge/munge.key"
  munged --socket="$D/munge/munge.socket" --key-file="$D/munge/munge.key" \
         --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" \
         --seed-file="$D/munge/munged.seed" || { cat "$D/munge/munged.log" >&2; return 1; }
  node="$(hostname -s)"
  hw="$(slurmd -C | sed -n 1p | tr ' ' '\n' \
        | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | tr '\n' ' ')"
  cat > "$SLURM_CONF" <<EOF
ClusterName=ci
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
DependencyParameters=kill_invalid_depend
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MinJobAge=3600
MaxArraySize=100001
MaxJobCount=200000
KillWait=5
InactiveLimit=0
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld -f "$SLURM_CONF" || { tail -n 30 "$D/log/slurmctld.log" >&2; return 1; }
  slurmd -f "$SLURM_CONF" || { tail -n 30 "$D/log/slurmd.log" >&2; return 1; }
  local i s=""
  for i in $(seq 1 150); do
    s="$(sinfo -h -n "$node" -o %t 2>/dev/null || true)"
    [ "$s" = idle ] && return 0
    sleep 0.2
  done
  echo "slurm_ci_start: node state '$s' after 30 s" >&2
  tail -n 30 "$D/log/slurmctld.log" "$D/log/slurmd.log" >&2 || true
  return 1
}

slurm_ci_stop() {
  local D="${SLURM_CI_DIR:?}" f p i pids=""
  # Jobs survive a slurmd shutdown: cancel and drain them first (scontrol ping answers at
  # once even when the controller is gone; squeue would retry for seconds).
  if scontrol ping 2>/dev/null | grep -q ' is UP'; then
    squeue -h -o %F 2>/dev/null | sort -u | xargs -r scancel 2>/dev/null || true
    for i in $(seq 1 100); do
      [ -z "$(squeue -h -o %i 2>/dev/null || true)" ] && break
      sleep 0.2
    done
  fi
  for f in "$D/run/slurmd.pid" "$D/run/slurmctld.pid" "$D/munge/munged.pid"; do
    [ -s "$f" ] || continue
    p="$(cat "$f")"
    if _slurm_ci_alive "$p" && kill "$p" 2>/dev/null; then pids="$pids $p"; fi
  done
  for i in $(seq 1 100); do
    local alive=""
    for p in $pids; do if _slurm_ci_alive "$p"; then alive="$alive $p"; fi; done
    pids="$alive"
    [ -z "$pids" ] && break
    sleep 0.1
  done
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
  return 0
}
