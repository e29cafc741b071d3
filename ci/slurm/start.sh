#!/bin/bash
# ci/slurm/start.sh - install (if missing), configure and start a single-node Slurm
# cluster for jobfleet's tests and CI. No systemd, no cgroups needed. Run as root.
# Idempotent: running daemons are left alone; if the generated slurm.conf changed,
# slurmctld and slurmd are restarted. Daemons started here are recorded in
# $RUN_DIR/<name>.started ("pid comm") so that ci/slurm/stop.sh stops exactly those.
#
# Measured on Debian 12, 2 cores, slurm-wlm 22.05.8, munge 0.5.15, MariaDB 10.11:
#   fresh machine, install + start, accounting on:    ~13 s (apt-get dominates)
#   packages present, daemons stopped, accounting on:  ~2 s (~0.2 s with accounting off)
#   everything already running (no-op):                ~0.5 s
#   accounting switched on<->off (restarts ctld+slurmd): ~2 s
#
# Environment knobs (all optional):
#   JOBFLEET_SLURM_ACCOUNTING=1       1: slurmdbd + local MariaDB so `sacct` works;
#                                     0: AccountingStorageType=accounting_storage/none
#   JOBFLEET_SLURM_CPUS=16            CPUs the node advertises (SlurmdParameters=config_overrides)
#   JOBFLEET_SLURM_SCHED_PARAMS=batch_sched_delay=0,sched_min_interval=0   ("" = Slurm default)
#   JOBFLEET_SLURM_MIN_JOB_AGE=300    seconds finished jobs stay visible in squeue/scontrol
#   JOBFLEET_SLURM_MAX_ARRAY_SIZE=1001
#   JOBFLEET_SLURM_TIMEOUT=60         seconds to wait for the node to become idle
#   JOBFLEET_SLURM_RESET=0            1: if slurmctld is not running, wipe its state and the
#                                     accounting DB (job ids restart at 1)
set -euo pipefail

ACCOUNTING=${JOBFLEET_SLURM_ACCOUNTING:-1}
CPUS=${JOBFLEET_SLURM_CPUS:-16}
SCHED_PARAMS=${JOBFLEET_SLURM_SCHED_PARAMS-batch_sched_delay=0,sched_min_interval=0}
MIN_JOB_AGE=${JOBFLEET_SLURM_MIN_JOB_AGE:-300}
MAX_ARRAY_SIZE=${JOBFLEET_SLURM_MAX_ARRAY_SIZE:-1001}
TIMEOUT=${JOBFLEET_SLURM_TIMEOUT:-60}
RESET=${JOBFLEET_SLURM_RESET:-0}

HOST=$(hostname -s)
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
RUN_DIR=/run/jobfleet-slurm
STATE_DIR=/var/lib/jobfleet-slurm
LOG_DIR=/var/log/jobfleet-slurm
MYSQL_SOCK=/run/mysqld/mysqld.sock
DB_PASS=jobfleet-ci   # throwaway; MariaDB only listens on 127.0.0.1

log() { echo "[ci/slurm/start] $*"; }
die() { echo "[ci/slurm/start] ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must be run as root"
for v in ACCOUNTING CPUS MIN_JOB_AGE MAX_ARRAY_SIZE TIMEOUT RESET; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "JOBFLEET_SLURM_$v must be a number, not '${!v}'"
done
exec 9>/run/jobfleet-slurm.lock   # start.sh and stop.sh never run concurrently; daemons are
                                  # started with 9>&- so that they do not inherit the lock
flock -w 300 9 || { echo "[ci/slurm/start] ERROR: /run/jobfleet-slurm.lock is held" >&2; exit 1; }

# alive PID: exists and is not a zombie (without systemd, PID 1 may reap ~1 s late)
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
# running NAME PIDFILE: the pid file names a live process whose comm is NAME
running() {
  local pid; pid=$(tr -dc 0-9 2>/dev/null < "$2") || return 1
  [ -n "$pid" ] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}
# started NAME PIDFILE: wait for the daemon's pid file, then record it as ours
started() {
  for _ in $(seq 50); do running "$1" "$2" && break; sleep 0.1; done
  running "$1" "$2" || die "$1 did not start (see $3)"
  echo "$(tr -dc 0-9 < "$2") $1" > "$RUN_DIR/$1.started"
}
wait_for() {  # wait_for SECONDS COMMAND...
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done
}

# ---- 1. packages ---------------------------------------------------------------
pkgs=(munge slurmctld slurmd slurm-client)
[ "$ACCOUNTING" = 1 ] && pkgs+=(slurmdbd mariadb-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt_log=/tmp/jobfleet-slurm-apt.log
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1 \
    || { tail -n 20 "$apt_log" >&2; die "package installation failed (full log: $apt_log)"; }
fi

# ---- 2. directories, munge key -------------------------------------------------
install -d -m 755 "$RUN_DIR" /etc/slurm
install -d -m 755 -o munge -g munge /run/munge          # no tmpfiles without systemd
install -d -m 755 -o slurm -g slurm "$LOG_DIR" "$STATE_DIR"
install -d -m 755 "$STATE_DIR/slurmd"
if [ "$RESET" = 1 ] && ! running slurmctld "$RUN_DIR/slurmctld.pid"; then
  log "wiping slurmctld state"; rm -rf "$STATE_DIR/ctld" "$LOG_DIR/jobcomp.log"
fi
install -d -m 700 -o slurm -g slurm "$STATE_DIR/ctld"
if [ ! -s /etc/munge/munge.key ]; then
  log "creating munge key"
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key

# ---- 3. slurm.conf / slurmdbd.conf ---------------------------------------------
if [ "$ACCOUNTING" = 1 ]; then
  acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux"
else
  acct="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
cat > "$CONF.new" <<EOF
# generated by jobfleet ci/slurm/start.sh -- single-node test cluster, no cgroups
ClusterName=jobfleet
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$acct
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
SchedulerType=sched/backfill
${SCHED_PARAMS:+SchedulerParameters=$SCHED_PARAMS}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=$MIN_JOB_AGE
MaxArraySize=$MAX_ARRAY_SIZE
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
conf_changed=0
if cmp -s "$CONF.new" "$CONF"; then
  rm -f "$CONF.new"
else
  if [ -f "$CONF" ] && ! grep -q '^# generated by jobfleet' "$CONF" && [ ! -e "$CONF.orig" ]; then
    cp -p "$CONF" "$CONF.orig"; log "kept the previous $CONF as $CONF.orig"
  fi
  chmod 644 "$CONF.new"; mv -f "$CONF.new" "$CONF"; conf_changed=1; log "wrote $CONF"
fi
if [ "$ACCOUNTING" = 1 ]; then
  # slurmdbd refuses a slurmdbd.conf not owned by SlurmUser with mode 600
  install -m 600 -o slurm -g slurm /dev/stdin "$DBD_CONF" <<EOF
# generated by jobfleet ci/slurm/start.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$RUN_DIR/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
fi

# ---- 4. munged -----------------------------------------------------------------
if ! running munged /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged 9>&- || die "munged failed (see /var/log/munge/munged.log)"
  started munged /run/munge/munged.pid /var/log/munge/munged.log
fi
wait_for 10 sh -c 'munge -n | unmunge' || die "munge does not work (see /var/log/munge/munged.log)"

# ---- 5. MariaDB + slurmdbd -----------------------------------------------------
if [ "$ACCOUNTING" = 1 ]; then
  install -d -m 755 -o mysql -g root /run/mysqld   # mariadbd (user mysql) writes its pid here
  if ! mysqladmin --socket="$MYSQL_SOCK" ping >/dev/null 2>&1; then
    if [ ! -d /var/lib/mysql/mysql ]; then
      mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$LOG_DIR/mariadb-install.log" 2>&1 \
        || die "mariadb-install-db failed (see $LOG_DIR/mariadb-install.log)"
    fi
    setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid --socket="$MYSQL_SOCK" \
      --bind-address=127.0.0.1 --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 </dev/null >>"$LOG_DIR/mariadb.log" 2>&1 9>&- &
    db_pid=$!
    end=$((SECONDS + 60))
    until mysqladmin --socket="$MYSQL_SOCK" ping >/dev/null 2>&1; do
      alive $db_pid && [ $SECONDS -lt $end ] || { tail -n 15 "$LOG_DIR/mariadb.log" >&2; die "MariaDB did not start"; }
      sleep 0.2
    done
    started mariadbd /run/mysqld/mysqld.pid "$LOG_DIR/mariadb.log"
  fi
  if [ "$RESET" = 1 ] && ! running slurmctld "$RUN_DIR/slurmctld.pid" && ! running slurmdbd "$RUN_DIR/slurmdbd.pid"; then
    log "dropping accounting database"; mysql --socket="$MYSQL_SOCK" -e 'DROP DATABASE IF EXISTS slurm_acct_db'
  fi
  mysql --socket="$MYSQL_SOCK" -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" || die "cannot create the MariaDB user for slurmdbd"
  if ! running slurmdbd "$RUN_DIR/slurmdbd.pid"; then
    slurmdbd 9>&- || die "slurmdbd failed (see $LOG_DIR/slurmdbd.log)"
    started slurmdbd "$RUN_DIR/slurmdbd.pid" "$LOG_DIR/slurmdbd.log"
  fi
  # sacctmgr reaches slurmdbd only once slurm.conf says accounting_storage/slurmdbd (done above)
  wait_for 30 sacctmgr -n list cluster \
    || { tail -n 15 "$LOG_DIR/slurmdbd.log" >&2; sacctmgr -n list cluster >&2; die "slurmdbd not answering"; }
fi

# ---- 6. slurmctld + slurmd -----------------------------------------------------
slurmd_t0=0
for d in slurmctld slurmd; do
  pidf=$RUN_DIR/$d.pid
  if [ $conf_changed = 1 ] && running $d "$pidf"; then
    pid=$(tr -dc 0-9 < "$pidf"); log "config changed: restarting $d (pid $pid)"
    kill "$pid"; for _ in $(seq 300); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && die "$d (pid $pid) did not stop"
  fi
  running $d "$pidf" && continue
  [ $d = slurmd ] && slurmd_t0=$(($(date +%s) - 1))
  $d 9>&- || die "$d failed (see $LOG_DIR/$d.log)"
  started $d "$pidf" "$LOG_DIR/$d.log"
done

# ---- 7. wait until the node is idle ---------------------------------------------
end=$((SECONDS + TIMEOUT)); resumed=0; state=
while :; do
  state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
  # a restarted slurmctld first reports the node state it saved: also require that the
  # slurmd started above has registered (SlurmdStartTime >= its launch time)
  reg=$(scontrol show node "$HOST" -o 2>/dev/null | grep -o 'SlurmdStartTime=[^ ]*' | cut -d= -f2 || true)
  reg_s=$(date -d "${reg:-1970-01-01}" +%s 2>/dev/null || echo 0)
  case $state in
    idle|mix|alloc) [ "$reg_s" -ge $slurmd_t0 ] && break ;;
    down*|drain*|drng*|fail*)
      if [ $resumed = 0 ] && [ "$reg_s" -ge $slurmd_t0 ]; then
        log "node is '$state': scontrol update State=RESUME"
        scontrol update NodeName="$HOST" State=RESUME || true; resumed=1
      fi ;;
  esac
  if [ $SECONDS -ge $end ]; then
    echo "[ci/slurm/start] ERROR: node $HOST not idle after ${TIMEOUT}s (state '${state:-none}')" >&2
    scontrol show node "$HOST" 2>&1 | grep -E 'State=|Reason=' >&2 || true
    tail -n 15 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 2>/dev/null || true
    exit 1
  fi
  sleep 0.2
done
log "node $HOST is $state (accounting: $([ "$ACCOUNTING" = 1 ] && echo slurmdbd || echo none); logs: $LOG_DIR)"
