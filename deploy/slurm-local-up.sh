#!/usr/bin/env bash
# deploy/slurm-local-up.sh [DIR]  --  a private single-node Slurm on this
# machine (munged + slurmctld + slurmd), without systemd: for trying
# deploy/slurm/*.sbatch and for the tests (tests/test_slurm.c starts one
# when no Slurm answers). deploy/slurm-local-down.sh DIR stops it.
#
# Everything lives under DIR (default /tmp/rlhf-slurm; it must be short:
# unix socket paths under it are limited to about 100 bytes):
#   DIR/etc/slurm.conf  generated (no cgroups, no accounting, no slurmdbd)
#   DIR/env.sh          `source DIR/env.sh` exports SLURM_CONF
#   DIR/munge/          a private munge key and socket (not /etc/munge)
#   DIR/run/*.pid       the daemons' pid files (slurm-local-down.sh uses them)
#   DIR/log/            daemon logs; jobcomp.txt has one line per finished job
#   DIR/spool/          slurmctld's state, slurmd's spool
#   DIR/tmp/NODE        the node's TmpFS (PMIx client directories)
#
# Idempotent and fast (about a second): daemons of this DIR that are alive
# are kept, missing ones started; the config is written only when none of
# them runs. Prints `export SLURM_CONF=...` (so `eval "$(... )"` works) and
# exits 0 only once munge round-trips and the node is idle.
#
# Choices, each a trap that was hit without it:
#   - The node line comes from `slurmd -C` (so the node is never drained for
#     "Low RealMemory"), but advertises SLURM_LOCAL_CPUS CPUs (default 8,
#     SlurmdParameters=config_overrides): a 2-core machine must still fit a
#     job of coordinator + learner ranks + rollout workers beside a second
#     job of rollout workers. The processes share the real cores.
#   - SchedulerParameters=batch_sched_delay=0 and MinJobAge=5: otherwise a
#     batch job starts on a 3 s tick and `sbatch --wait` returns 10-40 s late.
#     bf_interval=1,sched_interval=2: a requeued job, eligible again after
#     cred_expire (below), is otherwise started only by the next backfill
#     pass (every 30 s).
#   - AuthInfo=...,cred_expire=SLURM_LOCAL_CRED_EXPIRE (default 10): a
#     requeued job waits that long before it may start again (default 120 s).
#   - TmpFS per node under DIR: PMIx directories of jobs with reused ids
#     (every clean start numbers jobs from 1) otherwise collide in /tmp.
#   - MpiDefault=pmix: Debian's Open MPI starts under srun only with PMIx.
#   - KillWait=10: between SIGTERM and SIGKILL when a job is cancelled or
#     requeued; the learner ranks checkpoint in that window.
#   - ports: SLURM_LOCAL_CTLD_PORT / SLURM_LOCAL_SLURMD_PORT, else the first
#     free ones from 6817 / 6818 up, so another Slurm on the machine is left
#     alone.
#
# Other knobs: SLURM_LOCAL_NODE (node name, default `hostname -s`),
# SLURM_LOCAL_MEM_MB, SLURM_LOCAL_TIMEOUT (seconds to wait for the node,
# default 30). Must run as root (slurmd setuids to the job's user).
set -euo pipefail

DIR=${1:-/tmp/rlhf-slurm}
HOST=$(hostname -s)
NODE=${SLURM_LOCAL_NODE:-$HOST}
CPUS=${SLURM_LOCAL_CPUS:-8}
CRED_EXPIRE=${SLURM_LOCAL_CRED_EXPIRE:-10}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-30}

log() { printf '[slurm-local-up] %s\n' "$*" >&2; }
die() { printf '[slurm-local-up] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (slurmd must be able to setuid to the job user)"
missing=()
for b in munged munge unmunge slurmctld slurmd sbatch srun sinfo scontrol squeue scancel; do
  command -v "$b" >/dev/null 2>&1 || missing+=("$b")
done
[ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}; install them with deploy/install-deps.sh (or:
  apt-get install -y --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge)"
case "$CPUS" in ''|*[!0-9]*|0) die "SLURM_LOCAL_CPUS must be a positive integer, got '$CPUS'" ;; esac
case "$CRED_EXPIRE" in ''|*[!0-9]*) die "SLURM_LOCAL_CRED_EXPIRE must be a whole number of seconds" ;; esac
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac
longest="$DIR/spool/d-$NODE/${NODE}_4294967294.4294967294"
[ ${#longest} -le 100 ] || die "DIR too long for unix socket paths (${#longest} > 100 chars): $DIR"

mkdir -p "$DIR"/{etc,run,log,spool/ctld,"spool/d-$NODE",tmp/"$NODE",munge}
chmod 755 "$DIR" "$DIR/etc" "$DIR/run" "$DIR/log" "$DIR/spool"
chmod 1777 "$DIR/tmp" "$DIR/tmp/$NODE"
chmod 711 "$DIR/munge"   # munged: the socket's folder must not be group/other-writable
CONF="$DIR/etc/slurm.conf"
MSOCK="$DIR/munge/munge.socket"
MKEY="$DIR/munge/munge.key"

# pid_alive NAME: DIR/run/NAME.pid names a live process whose command line
# mentions DIR (so a recycled pid is never taken for ours).
pid_alive() {
  local f="$DIR/run/$1.pid" p
  [ -s "$f" ] || return 1
  p=$(tr -dc '0-9' <"$f")
  [ -n "$p" ] && [ -r "/proc/$p/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$p/cmdline" | grep -qF -- "$DIR"
}
port_busy() {  # something listens on TCP port $1 (v4 or v6)
  local hex; hex=$(printf ':%04X' "$1")
  awk -v h="$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
free_port_from() {  # the first free port >= $1 that is not $2
  local p=$1
  while port_busy "$p" || [ "$p" = "${2:-}" ]; do p=$((p + 1)); done
  echo "$p"
}

any_alive=0
for d in munged slurmctld "slurmd-$NODE"; do pid_alive "$d" && any_alive=1; done

if [ ! -s "$MKEY" ]; then
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --bits=1024 --keyfile="$MKEY"
  else
    dd if=/dev/urandom of="$MKEY" bs=128 count=1 status=none
  fi
fi
chown root:root "$MKEY"; chmod 600 "$MKEY"   # munged refuses a key others can read

if [ "$any_alive" -eq 0 ]; then
  CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-$(free_port_from 6817)}
  SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-$(free_port_from 6818 "$CTLD_PORT")}
  hw=$(slurmd -C | head -1)
  getv() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  mem=${SLURM_LOCAL_MEM_MB:-$(getv RealMemory)}
  cat >"$CONF" <<EOF
# generated by rlhf deploy/slurm-local-up.sh on $(date -u +%FT%TZ): one node, no cgroups, no accounting
ClusterName=rlhflocal
SlurmctldHost=${HOST}(127.0.0.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${MSOCK},cred_expire=${CRED_EXPIRE}
StateSaveLocation=${DIR}/spool/ctld
SlurmdSpoolDir=${DIR}/spool/d-%n
SlurmctldPidFile=${DIR}/run/slurmctld.pid
SlurmdPidFile=${DIR}/run/slurmd-%n.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
TmpFS=${DIR}/tmp/%n
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${DIR}/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,bf_interval=1,sched_interval=2
MpiDefault=pmix
MinJobAge=5
KillWait=10
ReturnToService=2
MailProg=/bin/true
SlurmdParameters=config_overrides
NodeName=${NODE} NodeAddr=127.0.0.1 NodeHostname=${HOST} CPUs=${CPUS} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  chmod 644 "$CONF"
  echo "export SLURM_CONF=$CONF" >"$DIR/env.sh"
  log "wrote $CONF (slurmctld port $CTLD_PORT, slurmd port $SLURMD_PORT, $CPUS CPUs)"
else
  log "daemons already running for $DIR; keeping $CONF"
fi
export SLURM_CONF="$CONF"
CTLD_PORT=$(sed -n 's/^SlurmctldPort=//p' "$CONF")
SLURMD_PORT=$(sed -n 's/^SlurmdPort=//p' "$CONF")

start() {  # start NAME CMD...: its own session, output to DIR/log/NAME.out
  local name=$1; shift
  if pid_alive "$name"; then return 0; fi
  rm -f "$DIR/run/$name.pid"
  setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
  local launcher=$!
  # The daemons write their own pid file; setsid execs in place, so $! is a
  # fallback for one that does not.
  for _ in $(seq 1 50); do [ -s "$DIR/run/$name.pid" ] && break; sleep 0.1; done
  [ -s "$DIR/run/$name.pid" ] || echo "$launcher" >"$DIR/run/$name.pid"
  sleep 0.1
  pid_alive "$name" || { tail -20 "$DIR/log/$name.out" >&2; die "$name failed to start (see $DIR/log/)"; }
  log "started $name pid $(cat "$DIR/run/$name.pid")"
}

if ! pid_alive munged; then
  rm -f "$MSOCK" "$MSOCK.lock"
  start munged munged --foreground --socket="$MSOCK" --key-file="$MKEY" \
    --pid-file="$DIR/run/munged.pid" --seed-file="$DIR/munge/munged.seed" --log-file="$DIR/log/munged.log"
fi
for _ in $(seq 1 50); do [ -S "$MSOCK" ] && break; sleep 0.1; done
munge -S "$MSOCK" -n </dev/null | unmunge -S "$MSOCK" >/dev/null \
  || die "munge round-trip failed (see $DIR/log/munged.out)"

if ! pid_alive slurmctld; then
  port_busy "$CTLD_PORT" && die "TCP port $CTLD_PORT is in use (another slurmctld?): deploy/slurm-local-down.sh $DIR, then again"
  # -c: a clean start (no old jobs, ids from 1): so the stale PMIx folders go too.
  find "$DIR/tmp" -mindepth 2 -maxdepth 2 -name 'spmix_appdir_*' -exec rm -rf {} + 2>/dev/null || true
  start slurmctld slurmctld -D -i -c -f "$CONF"
fi
if ! pid_alive "slurmd-$NODE"; then
  port_busy "$SLURMD_PORT" && die "TCP port $SLURMD_PORT is in use (another slurmd?): deploy/slurm-local-down.sh $DIR, then again"
  start "slurmd-$NODE" slurmd -D -f "$CONF" -N "$NODE"
fi

deadline=$((SECONDS + TIMEOUT))
state=""
while [ $SECONDS -lt $deadline ]; do
  state=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -1 || true)
  case "$state" in idle|mixed|allocated|completing) break ;; esac
  sleep 0.2
done
case "$state" in
  idle|mixed|allocated|completing) ;;
  *) scontrol show node >&2 || true
     tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd-$NODE.log" >&2 || true
     die "node $NODE not ready after ${TIMEOUT}s (state: '${state}')" ;;
esac
log "ready: $NODE ($state, $(sed -n "s/.*CPUs=\([0-9]*\).*/\1/p" "$CONF" | tail -1) CPUs). Use: source $DIR/env.sh"
cat "$DIR/env.sh"
