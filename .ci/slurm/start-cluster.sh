#!/usr/bin/env bash
# Start a real one-node Slurm cluster on this machine (loopback only), for CI and local tests.
#
# Target: a fresh Debian 12 machine (or container), run as root, no systemd needed.
#   sudo .ci/slurm/start-cluster.sh      # installs, configures and starts munged, slurmctld, slurmd
#   sudo .ci/slurm/stop-cluster.sh       # stops them again (by pid file)
#
# What it does (every step is skipped when already done, so re-running it is harmless):
#   1. apt-get install munge slurmctld slurmd slurm-client (only if a binary is missing);
#   2. writes /etc/munge/munge.key (mode 400, owner munge) if missing and starts munged;
#   3. writes /etc/slurm/slurm.conf for one node (this host on 127.0.0.1, all its CPUs);
#   4. makes `hostname -s` resolvable (/etc/hosts), starts slurmctld then slurmd;
#   5. waits until the node is idle and proves the cluster with `srun` and `sbatch --wait`.
#
# Settings (environment variables, all optional):
#   CI_SLURM_PARTITION   name of the (default) partition            [debug]
#   CI_SLURM_MAX_TIME    MaxTime of that partition                  [2:00:00]
#   CI_SLURM_WAIT        seconds to wait for the node to become idle [90]
#
# Exit status 0 means: `sinfo` shows the node idle and a job ran through srun and sbatch.
# Anything else prints what failed and the tails of the daemon logs.
set -euo pipefail

PARTITION="${CI_SLURM_PARTITION:-debug}"
MAX_TIME="${CI_SLURM_MAX_TIME:-2:00:00}"
WAIT_SECONDS="${CI_SLURM_WAIT:-90}"

SLURM_CONF=/etc/slurm/slurm.conf
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_PID="${MUNGE_RUN}/munged.pid"
SLURM_RUN=/run/slurm
CTLD_PID="${SLURM_RUN}/slurmctld.pid"
SLURMD_PID="${SLURM_RUN}/slurmd.pid"
LOG_DIR=/var/log/slurm
CTLD_LOG="${LOG_DIR}/slurmctld.log"
SLURMD_LOG="${LOG_DIR}/slurmd.log"
MUNGE_LOG=/var/log/munge/munged.log
MARKER="# Written by coronalign .ci/slurm/start-cluster.sh"

say() { printf '[start-cluster] %s\n' "$*"; }

show_logs() {
    local f
    for f in "$MUNGE_LOG" "$CTLD_LOG" "$SLURMD_LOG"; do
        if [[ -r "$f" ]]; then
            printf '\n----- last lines of %s -----\n' "$f" >&2
            tail -n 25 "$f" >&2 || true
        else
            printf '\n----- %s: not found -----\n' "$f" >&2
        fi
    done
}

die() {
    printf '[start-cluster] ERROR: %s\n' "$*" >&2
    show_logs
    exit 1
}

# pid_alive PIDFILE: true if PIDFILE names a running process.
pid_alive() {
    local pid
    [[ -s "$1" ]] || return 1
    pid="$(cat "$1" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null
}

[[ "$(id -u)" -eq 0 ]] || { echo "[start-cluster] ERROR: run as root (e.g. sudo $0)" >&2; exit 1; }

HOST="$(hostname -s)"
[[ -n "$HOST" ]] || die "hostname -s is empty: set a host name first"

# --- 1. packages -------------------------------------------------------------------------------
need_install=0
for b in munged munge slurmctld slurmd sinfo srun sbatch squeue scontrol; do
    command -v "$b" >/dev/null 2>&1 || need_install=1
done
if [[ "$need_install" -eq 1 ]]; then
    say "installing munge and Slurm (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -q || die "apt-get update failed (no network / no apt sources?)"
    timeout 900 apt-get install -y -q --no-install-recommends munge slurmctld slurmd slurm-client \
        || die "apt-get install of munge slurmctld slurmd slurm-client failed"
fi
for b in munged munge unmunge slurmctld slurmd sinfo srun sbatch squeue scontrol; do
    command -v "$b" >/dev/null 2>&1 || die "'$b' is still not on PATH after installing"
done
id munge >/dev/null 2>&1 || die "user 'munge' does not exist (the munge package should create it)"

# --- 2. munge ----------------------------------------------------------------------------------
install -d -m 0700 -o munge -g munge /etc/munge
if [[ ! -s "$MUNGE_KEY" ]]; then
    say "writing a new munge key $MUNGE_KEY"
    if command -v mungekey >/dev/null 2>&1; then
        timeout 30 mungekey --create --keyfile="$MUNGE_KEY" --force
    else
        timeout 30 dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
fi
chown munge:munge "$MUNGE_KEY"
chmod 0400 "$MUNGE_KEY"
install -d -m 0755 -o munge -g munge "$MUNGE_RUN"
install -d -m 0700 -o munge -g munge /var/lib/munge /var/log/munge

if pid_alive "$MUNGE_PID"; then
    say "munged already running (pid $(cat "$MUNGE_PID"))"
else
    say "starting munged"
    rm -f "$MUNGE_PID" "${MUNGE_RUN}/munge.socket.2" "${MUNGE_RUN}/munge.socket.2.lock"
    timeout 30 runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1 \
        || die "munged did not start"
fi
timeout 10 bash -c 'munge -n | unmunge >/dev/null' \
    || die "munge does not work: 'munge -n | unmunge' failed"

# --- 3. slurm.conf -----------------------------------------------------------------------------
if ! getent hosts "$HOST" >/dev/null 2>&1; then
    say "adding '$HOST' to /etc/hosts"
    printf '127.0.0.1\t%s\n' "$HOST" >>/etc/hosts
fi

CPUS="$(nproc)"
# RealMemory must not exceed what slurmd detects, or the node is drained ("Low RealMemory").
DETECTED_MB="$(timeout 30 slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9][0-9]*\).*/\1/p' | head -n1 || true)"
[[ "$DETECTED_MB" =~ ^[0-9]+$ ]] || die "could not read RealMemory from 'slurmd -C'"
REAL_MB=$((DETECTED_MB * 9 / 10))
((REAL_MB >= 256)) || die "only ${DETECTED_MB} MB of memory detected; need at least 300 MB"

install -d -m 0755 /etc/slurm "$SLURM_RUN" "$LOG_DIR" /var/spool/slurmd
install -d -m 0700 /var/spool/slurmctld

NEW_CONF="$(cat <<EOF
$MARKER
# One-node test cluster on loopback; no systemd, no cgroups, no accounting database.
ClusterName=coronalign-ci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${CTLD_LOG}
SlurmdLogFile=${SLURMD_LOG}
SlurmctldDebug=info
SlurmdDebug=info
# cgroup-based tracking fails in containers ("cgroup namespace 'freezer' not mounted").
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No MPI here. (slurmd still logs "can not load PMIx library" errors at start: harmless.)
MpiDefault=none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Keep finished jobs visible to squeue for 10 min: the Snakemake plugin polls with squeue.
MinJobAge=600
ReturnToService=2
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
Waittime=0
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${REAL_MB} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${HOST} Default=YES MaxTime=${MAX_TIME} State=UP
EOF
)"

conf_changed=0
if [[ ! -f "$SLURM_CONF" ]] || [[ "$(cat "$SLURM_CONF")" != "$NEW_CONF" ]]; then
    conf_changed=1
    if [[ -f "$SLURM_CONF" ]] && ! grep -qF "$MARKER" "$SLURM_CONF"; then
        backup="${SLURM_CONF}.bak.$(date +%Y%m%d%H%M%S)"
        say "saving the existing (foreign) $SLURM_CONF as $backup"
        cp -p "$SLURM_CONF" "$backup"
    fi
    say "writing $SLURM_CONF (node $HOST: CPUs=$CPUS RealMemory=${REAL_MB} MB, partition $PARTITION)"
    printf '%s\n' "$NEW_CONF" >"$SLURM_CONF"
    chmod 0644 "$SLURM_CONF"
fi

# A changed configuration needs fresh daemons (node definitions are read at start only).
if [[ "$conf_changed" -eq 1 ]] && { pid_alive "$CTLD_PID" || pid_alive "$SLURMD_PID"; }; then
    say "configuration changed: restarting slurmctld and slurmd"
    SKIP_MUNGE=1 "$(dirname "$0")/stop-cluster.sh"
fi

# --- 4. daemons --------------------------------------------------------------------------------
if pid_alive "$CTLD_PID"; then
    say "slurmctld already running (pid $(cat "$CTLD_PID"))"
else
    say "starting slurmctld"
    rm -f "$CTLD_PID"
    timeout 60 slurmctld </dev/null >>"$CTLD_LOG" 2>&1 || die "slurmctld failed to start"
fi
for _ in $(seq 1 30); do
    timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' && break
    sleep 1
done
timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' || die "slurmctld does not answer 'scontrol ping'"

if pid_alive "$SLURMD_PID"; then
    say "slurmd already running (pid $(cat "$SLURMD_PID"))"
else
    say "starting slurmd"
    rm -f "$SLURMD_PID"
    timeout 60 slurmd </dev/null >>"$SLURMD_LOG" 2>&1 || die "slurmd failed to start"
fi

# --- 5. wait for the node, then prove it --------------------------------------------------------
say "waiting (at most ${WAIT_SECONDS} s) for node $HOST to become idle"
state=""
deadline=$((SECONDS + WAIT_SECONDS))
while ((SECONDS < deadline)); do
    state="$(timeout 10 sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n1 || true)"
    case "$state" in
        idle | mixed | allocated | completing) break ;;
        down* | drain* | drained* | fail*)
            # e.g. left "down" by an earlier run; it is ours, so put it back into service.
            timeout 10 scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
            ;;
    esac
    sleep 1
done
case "$state" in
    idle | mixed | allocated | completing) ;;
    *)
        timeout 10 scontrol show node "$HOST" >&2 || true
        die "node $HOST is not idle after ${WAIT_SECONDS} s (state: '${state:-unknown}')"
        ;;
esac

say "proving the cluster: srun and sbatch --wait"
timeout 60 srun -N1 -n1 -p "$PARTITION" -t 1 true || die "'srun -N1 true' failed"
timeout 90 sbatch --wait -Q -p "$PARTITION" -t 1 -N1 -n1 -o /dev/null -J ci-proof --wrap true \
    || die "'sbatch --wait --wrap true' failed"

timeout 10 sinfo
say "Slurm cluster is up: node $HOST, partition $PARTITION (${CPUS} CPUs, ${REAL_MB} MB)"
