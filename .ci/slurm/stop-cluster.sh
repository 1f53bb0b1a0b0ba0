#!/usr/bin/env bash
# Stop the one-node test cluster started by .ci/slurm/start-cluster.sh: slurmd, slurmctld, munged,
# each by its pid file (SIGTERM, wait up to 15 s, then SIGKILL). Harmless if nothing is running.
#   SKIP_MUNGE=1 .ci/slurm/stop-cluster.sh   # leave munged running (used when restarting Slurm)
set -uo pipefail

say() { printf '[stop-cluster] %s\n' "$*"; }

# stop NAME PIDFILE
stop() {
    local name="$1" pidfile="$2" pid
    if [[ ! -s "$pidfile" ]]; then
        say "$name: no pid file ($pidfile), not running"
        return 0
    fi
    pid="$(cat "$pidfile" 2>/dev/null)"
    if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
        say "$name: not running (stale pid file removed)"
        rm -f "$pidfile"
        return 0
    fi
    say "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name: still alive after 15 s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 1
    fi
    if kill -0 "$pid" 2>/dev/null; then
        say "$name: pid $pid could not be stopped" >&2
        return 1
    fi
    rm -f "$pidfile"
}

rc=0
stop slurmd /run/slurm/slurmd.pid || rc=1
stop slurmctld /run/slurm/slurmctld.pid || rc=1
if [[ "${SKIP_MUNGE:-0}" != 1 ]]; then
    stop munged /run/munge/munged.pid || rc=1
fi
exit "$rc"
