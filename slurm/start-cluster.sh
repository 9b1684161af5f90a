#!/usr/bin/env bash
# Bring up a real single-node SLURM on Debian for tests: munged, MariaDB, slurmdbd (accounting),
# slurmctld and slurmd, each started by hand (no systemd) as a foreground process in its own
# session, its PID recorded under $BENCH_SLURM_STATE/run. slurm/stop-cluster.sh ends exactly those.
#
#   sudo slurm/start-cluster.sh            # installs the Debian packages when missing (root)
#   BENCH_SLURM_STATE=/some/dir slurm/start-cluster.sh
#
# Idempotent: when the cluster it started is still up and answers, it says so and exits 0; when
# part of it is up, it stops what it started and starts again. It fails loudly (exit 1, the last
# lines of the daemon's log) when something cannot start. Writes /etc/slurm/{slurm,slurmdbd,gres}.conf
# (marked as ours; it refuses to overwrite a slurm.conf it did not write).
#
# The node is a CPU-only machine that declares one fake GPU (gres gpu:1 on /dev/null), so profiles
# that ask for GPUs can be submitted and scheduled here.
set -euo pipefail

STATE="${BENCH_SLURM_STATE:-/var/tmp/bench-slurm}"
CONF_DIR=/etc/slurm
MARK="# written by dream-bench slurm/start-cluster.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)

say() { echo "start-cluster: $*"; }
die() {
    echo "start-cluster: ERROR: $*" >&2
    exit 1
}
show_log() {  # the end of a daemon's log, to stderr, when it failed
    local f
    for f in "$@"; do
        [ -s "$f" ] && { echo "---- last lines of $f" >&2; tail -n 25 "$f" >&2; }
    done
    return 0
}

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts system daemons)"

# ------------------------------------------------------------------ packages
need_install=0
for bin in munged slurmctld slurmd sbatch squeue sacct slurmdbd mariadbd; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need_install=1
done
if [ "$need_install" = 1 ]; then
    say "installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq "${PACKAGES[@]}" >/dev/null || die "apt-get install ${PACKAGES[*]} failed"
fi
export PATH="$PATH:/usr/sbin:/sbin"

# ------------------------------------------------------------------ already up?
mkdir -p "$STATE/run" "$STATE/log" "$STATE/ctld" "$STATE/slurmd"
chmod 755 "$STATE" "$STATE/run" "$STATE/log"

running() {  # running PID: exists and is not a zombie (PID 1 here may be slow to reap)
    local st
    st="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
    [ -n "$st" ] && [ "${st:0:1}" != Z ]
}
alive() {  # alive NAME: the recorded PID runs the expected program
    local pidfile="$STATE/run/$1.pid" pid
    [ -f "$pidfile" ] || return 1
    pid="$(cat "$pidfile")"
    [ -n "$pid" ] && running "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

if alive slurmctld && alive slurmd && alive slurmdbd && timeout 10 sinfo -h >/dev/null 2>&1; then
    say "already running (state in $STATE)"
    sinfo
    exit 0
fi
if ls "$STATE"/run/*.pid >/dev/null 2>&1; then
    say "a previous cluster is partly up: stopping what it started"
    "$HERE/stop-cluster.sh"
fi

# start_daemon NAME CMD...: a foreground daemon in its own session; its PID (the program's own:
# setsid and setpriv exec) goes to $STATE/run/NAME.pid, its output to $STATE/log/NAME.out.
start_daemon() {
    local name="$1" pid
    shift
    setsid "$@" >>"$STATE/log/$name.out" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$STATE/run/$name.pid"
    sleep 0.3
    running "$pid" || { show_log "$STATE/log/$name.out" "$STATE/log/$name.log"; die "$name exited at once"; }
}

wait_for() {  # wait_for SECONDS WHAT CMD...: poll CMD until it succeeds
    local secs="$1" what="$2" i
    shift 2
    for ((i = 0; i < secs * 4; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    return 1
}

# ------------------------------------------------------------------ munge
if wait_for 1 "munge" bash -c 'munge -n | unmunge'; then
    say "munged already answers (not started here)"
else
    [ -s /etc/munge/munge.key ] || {
        if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force
        else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
    }
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
    chmod 400 /etc/munge/munge.key
    chmod 755 /run/munge
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F
    wait_for 15 munge bash -c 'munge -n | unmunge' || { show_log "$STATE/log/munged.out" /var/log/munge/munged.log; die "munged does not answer"; }
    say "munged up (pid $(cat "$STATE/run/munged.pid"))"
fi

# ------------------------------------------------------------------ MariaDB
if wait_for 1 mariadb mariadb -e 'select 1'; then
    say "MariaDB already answers (not started here)"
else
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld
    if [ ! -d /var/lib/mysql/mysql ]; then
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/log/mariadb-install.out" 2>&1 \
            || { show_log "$STATE/log/mariadb-install.out"; die "mariadb-install-db failed"; }
    fi
    start_daemon mariadbd /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
        --socket=/run/mysqld/mysqld.sock --skip-networking --log-error="$STATE/log/mariadbd.log"
    wait_for 60 mariadb mariadb -e 'select 1' || { show_log "$STATE/log/mariadbd.out" "$STATE/log/mariadbd.log"; die "MariaDB does not answer"; }
    say "MariaDB up (pid $(cat "$STATE/run/mariadbd.pid"))"
fi
if [ ! -s "$STATE/dbpass" ]; then
    (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$STATE/dbpass")
fi
DBPASS="$(cat "$STATE/dbpass")"
mariadb <<SQL || die "could not create the accounting database"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

# ------------------------------------------------------------------ configuration
mkdir -p "$CONF_DIR"
if [ -f "$CONF_DIR/slurm.conf" ] && ! grep -qF "$MARK" "$CONF_DIR/slurm.conf"; then
    die "$CONF_DIR/slurm.conf exists and was not written by this script; move it away first"
fi
# The node as slurmd sees the hardware (sockets, cores, threads), named localhost, 90 % of its memory.
read -r hw_line < <(slurmd -C | head -n 1)
hw="$(echo "$hw_line" | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')"
mem="$(echo "$hw_line" | tr ' ' '\n' | sed -n 's/^RealMemory=//p')"
mem=$((mem * 9 / 10))

cat >"$CONF_DIR/slurm.conf" <<CONF
$MARK
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
# job credentials live 10 s (default 120): a requeued job waits this long before it may start again
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$STATE/slurmctld.pidfile
SlurmdPidFile=$STATE/slurmd.pidfile
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SchedulerType=sched/backfill
# schedule every few seconds (defaults: main 60 s, backfill 30 s), so requeued jobs restart soon
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MaxArraySize=1001
# quick turnaround for tests: SIGKILL 5 s after SIGTERM, finished jobs visible to squeue for 5 min
KillWait=5
MinJobAge=300
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
NodeName=localhost NodeAddr=127.0.0.1 $hw RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
cat >"$CONF_DIR/gres.conf" <<CONF
$MARK
# a CPU-only test node that declares one GPU, so that GPU requests can be scheduled
NodeName=localhost Name=gpu File=/dev/null
CONF
cat >"$CONF_DIR/slurmdbd.conf" <<CONF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pidfile
LogFile=$STATE/log/slurmdbd.log
CONF
chown root:root "$CONF_DIR/slurmdbd.conf"
chmod 600 "$CONF_DIR/slurmdbd.conf"
chmod 644 "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"

# ------------------------------------------------------------------ slurmdbd, slurmctld, slurmd
start_daemon slurmdbd /usr/sbin/slurmdbd -D
wait_for 60 slurmdbd sacctmgr -n list cluster || { show_log "$STATE/log/slurmdbd.out" "$STATE/log/slurmdbd.log"; die "slurmdbd does not answer"; }
sacctmgr -i -Q add cluster local >/dev/null 2>&1 || true
say "slurmdbd up (pid $(cat "$STATE/run/slurmdbd.pid"))"

start_daemon slurmctld /usr/sbin/slurmctld -D -i
wait_for 30 slurmctld scontrol ping || { show_log "$STATE/log/slurmctld.out" "$STATE/log/slurmctld.log"; die "slurmctld does not answer"; }
say "slurmctld up (pid $(cat "$STATE/run/slurmctld.pid"))"

start_daemon slurmd /usr/sbin/slurmd -D -N localhost
node_idle() { sinfo -h -N -o '%t' | grep -qE '^(idle|mix|alloc)'; }
if ! wait_for 30 node node_idle; then
    scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
    wait_for 15 node node_idle || { sinfo -N -l >&2 || true; show_log "$STATE/log/slurmd.out" "$STATE/log/slurmd.log" "$STATE/log/slurmctld.log"; die "node localhost is not idle"; }
fi
say "slurmd up (pid $(cat "$STATE/run/slurmd.pid")); state in $STATE"
sinfo
