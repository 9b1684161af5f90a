#!/usr/bin/env bash
# Stop the single-node SLURM that slurm/start-cluster.sh started: cancel the jobs still on it, then
# end exactly the daemons whose PIDs it recorded under $BENCH_SLURM_STATE/run (slurmd, slurmctld,
# slurmdbd, MariaDB, munged; in that order), SIGTERM first and SIGKILL after 20 s. A recorded PID
# that no longer runs the program it was recorded for is left alone. Safe to run twice.
set -uo pipefail

STATE="${BENCH_SLURM_STATE:-/var/tmp/bench-slurm}"
export PATH="$PATH:/usr/sbin:/sbin"
say() { echo "stop-cluster: $*"; }

running() {  # running PID: exists and is not a zombie (PID 1 here may be slow to reap)
    local st
    st="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
    [ -n "$st" ] && [ "${st:0:1}" != Z ]
}
ours() {  # ours NAME: prints the recorded PID when it still runs the program NAME
    local pidfile="$STATE/run/$1.pid" pid
    [ -f "$pidfile" ] || return 1
    pid="$(cat "$pidfile")"
    [ -n "$pid" ] && running "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

if [ ! -d "$STATE/run" ]; then
    say "nothing recorded under $STATE/run"
    exit 0
fi

# Jobs first, while slurmctld still runs, so that no job step outlives the cluster.
if ours slurmctld >/dev/null && command -v squeue >/dev/null; then
    jobs="$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')"
    if [ -n "${jobs// /}" ]; then
        say "cancelling jobs $jobs"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null || true
        for _ in $(seq 40); do
            [ -z "$(timeout 5 squeue -h -t PD,R,CG,CF,S 2>/dev/null)" ] && break
            sleep 0.25
        done
    fi
fi

for name in slurmd slurmctld slurmdbd mariadbd munged; do
    pid="$(ours "$name")" || { rm -f "$STATE/run/$name.pid"; continue; }
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 80); do
        running "$pid" || break
        sleep 0.25
    done
    if running "$pid"; then
        say "$name (pid $pid) ignored SIGTERM for 20 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    say "stopped $name (pid $pid)"
    rm -f "$STATE/run/$name.pid"
done
exit 0
