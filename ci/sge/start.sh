#!/bin/bash
# ci/sge/start.sh - install (if missing), configure and start a single-host Son of Grid
# Engine cell (Debian's gridengine-* 8.1.9) for jobfleet's tests and CI. No systemd
# needed. Run as root. Idempotent: running daemons are left alone and only settings that
# differ are changed. Daemons started here are recorded in $RUN_DIR/<name>.started
# ("pid comm") so that ci/sge/stop.sh stops exactly those.
#
# What it sets up (cell "default", SGE_ROOT=/var/lib/gridengine):
#   - this host as admin, submit and execution host; queue all.q with $SLOTS slots;
#     parallel environment "smp" ($pe_slots); project "jobfleet"; consumable "gpu"
#   - min_uid/min_gid 0 so that root may submit (a throwaway test cell only!)
#   - the scheduler runs every second and right after each submission / job end;
#     accounting is written at once, so `qacct -j` knows a job as soon as it ends
#
# Measured on Debian 12, 2 cores: fresh machine, install + start ~11 s (apt-get
# dominates); packages present, daemons stopped ~5 s; everything running (no-op) ~2-3 s
# (the probe job).
#
# Environment knobs (all optional):
#   JOBFLEET_SGE_SLOTS=32       slots of all.q (jobs running at once; more than the cores:
#                               test jobs are short)
#   JOBFLEET_SGE_GPUS=0         value of the "gpu" consumable on this host
#   JOBFLEET_SGE_INTERVAL=0:0:1 scheduler interval (SGE's default is 0:0:15)
#   JOBFLEET_SGE_TIMEOUT=90     seconds to wait for the probe job to run
set -euo pipefail

SLOTS=${JOBFLEET_SGE_SLOTS:-32}
GPUS=${JOBFLEET_SGE_GPUS:-0}
INTERVAL=${JOBFLEET_SGE_INTERVAL:-0:0:1}
TIMEOUT=${JOBFLEET_SGE_TIMEOUT:-90}

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common
SPOOL=/var/spool/gridengine
QMASTER_PID=$SPOOL/qmaster/qmaster.pid
QMASTER_LOG=$SPOOL/qmaster/messages
RUN_DIR=/run/jobfleet-sge
WORK=$RUN_DIR/conf
HOST=$(hostname)
UTIL=/usr/lib/gridengine

log() { echo "[ci/sge/start] $*"; }
die() { echo "[ci/sge/start] ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must be run as root"
for v in SLOTS GPUS TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "JOBFLEET_SGE_$v must be a number, not '${!v}'"
done
[[ $INTERVAL =~ ^[0-9]+:[0-9]+:[0-9]+$ ]] || die "JOBFLEET_SGE_INTERVAL must be H:M:S, not '$INTERVAL'"
exec 9>/run/jobfleet-sge.lock   # start.sh and stop.sh never run concurrently; daemons
                                # are started with 9>&- so that they do not hold the lock
flock -w 300 9 || die "/run/jobfleet-sge.lock is held"

# alive PID: exists and is not a zombie (without systemd, PID 1 may reap ~1 s late)
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
# running NAME PIDFILE: the pid file names a live process whose comm is NAME
running() {
  local pid; pid=$(tr -dc 0-9 2>/dev/null < "$2") || return 1
  [ -n "$pid" ] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}
execd_pidfile() { ls -t "$SPOOL"/execd/*/execd.pid 2>/dev/null | head -n 1 || true; }
logs_tail() {
  tail -n 15 "$QMASTER_LOG" >&2 2>/dev/null || true
  for f in "$SPOOL"/execd/*/messages; do [ -f "$f" ] && tail -n 15 "$f" >&2; done
}
wait_for() {  # wait_for SECONDS COMMAND...
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done
}
# apply KIND NAME DESIRED_FILE SHOW_CMD...: load DESIRED_FILE with `qconf -M<KIND>` when
# what SHOW_CMD prints differs from it (ignoring blank space and line continuations)
# qc ARGS...: qconf quietly (it reports successes on stderr); its output is shown on failure
qc() { qconf "$@" >"$WORK/qconf.out" 2>&1 || { cat "$WORK/qconf.out" >&2; return 1; }; }
normalise() { sed -e 's/\\$//' "$1" | tr -s ' \t\n' ' '; }
apply() {
  local kind=$1 file=$2; shift 2
  "$@" > "$file.now" 2>/dev/null || true
  if [ "$(normalise "$file")" != "$(normalise "$file.now")" ]; then
    qc "-M$kind" "$file" || die "qconf -M$kind $file failed"
    log "updated $kind ($(basename "$file"))"
  fi
}

# ---- 1. packages ---------------------------------------------------------------
pkgs=(gridengine-master gridengine-exec gridengine-client)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (pulls in an MTA, exim4; it is not started)"
  # the package's debconf question names the master; unanswered it leaves act_qmaster empty
  for p in gridengine-common gridengine-client gridengine-exec gridengine-master; do
    printf '%s shared/gridenginemaster string %s\n%s shared/gridenginecell string default\n%s shared/gridengineconfig boolean true\n' \
      "$p" "$HOST" "$p" "$p"
  done | debconf-set-selections
  apt_log=/tmp/jobfleet-sge-apt.log
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1 \
    || { tail -n 20 "$apt_log" >&2; die "package installation failed (full log: $apt_log)"; }
fi
[ -f "$COMMON/bootstrap" ] || die "$COMMON/bootstrap missing: the cell was not created (dpkg-reconfigure gridengine-master)"
install -d -m 755 "$RUN_DIR" "$WORK"

# ---- 2. host names ---------------------------------------------------------------
# SGE resolves peers by address; when this host's address resolves back to another name
# (Debian's /etc/hosts: 127.0.0.1 localhost vm), clients are refused with "client IP
# resolved to host name localhost. This is not identical to clients host name vm".
names_changed=0
addr=$(getent ahostsv4 "$HOST" | awk 'NR == 1 {print $1}')
[ -n "$addr" ] || die "cannot resolve this host's name '$HOST'"
back=$("$UTIL/gethostbyaddr" -name "$addr" 2>/dev/null || true)
want_aliases=
[ -n "$back" ] && [ "$back" != "$HOST" ] && want_aliases="$HOST $back"
if [ "$(cat "$COMMON/host_aliases" 2>/dev/null || true)" != "$want_aliases" ]; then
  if [ -n "$want_aliases" ]; then echo "$want_aliases" > "$COMMON/host_aliases"; else rm -f "$COMMON/host_aliases"; fi
  names_changed=1; log "host_aliases: '${want_aliases:-none}'"
fi
if [ "$(tr -d ' \n' < "$COMMON/act_qmaster" 2>/dev/null || true)" != "$HOST" ] && ! running sge_qmaster "$QMASTER_PID"; then
  echo "$HOST" > "$COMMON/act_qmaster"; chown sgeadmin:sgeadmin "$COMMON/act_qmaster"; names_changed=1
fi

# ---- 3. sge_qmaster ----------------------------------------------------------------
install -d -m 755 -o sgeadmin -g sgeadmin /run/gridengine
if [ $names_changed = 1 ] && running sge_qmaster "$QMASTER_PID"; then
  pid=$(tr -dc 0-9 < "$QMASTER_PID"); log "host names changed: restarting sge_qmaster (pid $pid)"
  kill "$pid"; for _ in $(seq 300); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && die "sge_qmaster (pid $pid) did not stop"
  echo "$HOST" > "$COMMON/act_qmaster"
fi
if ! running sge_qmaster "$QMASTER_PID"; then
  rm -f "$QMASTER_PID"
  /usr/sbin/sge_qmaster 9>&- </dev/null || { logs_tail; die "sge_qmaster failed"; }
  for _ in $(seq 100); do running sge_qmaster "$QMASTER_PID" && break; sleep 0.1; done
  running sge_qmaster "$QMASTER_PID" || { logs_tail; die "sge_qmaster did not start"; }
  echo "$(tr -dc 0-9 < "$QMASTER_PID") sge_qmaster" > "$RUN_DIR/sge_qmaster.started"
  log "started sge_qmaster (pid $(tr -dc 0-9 < "$QMASTER_PID"))"
fi
wait_for 30 qconf -sh || { logs_tail; qconf -sh >&2 || true; die "sge_qmaster does not answer"; }

# ---- 4. cell configuration -------------------------------------------------------------
qconf -sh | grep -qx "$HOST" || qc -ah "$HOST"
qconf -ss 2>/dev/null | grep -qx "$HOST" || qc -as "$HOST"

# global configuration: root may submit (min_uid 0), loads every 5 s, accounting at once
show_global() {  # one line per setting (continuation lines joined), sorted
  qconf -sconf global | sed -e '1{/^#global:/d}' -e ':a' -e '/\\$/N; s/\\\n//; ta' | sort
}
show_global | sed -e 's/^\(min_uid\|min_gid\) .*/\1 0/' \
  -e 's/^load_report_time .*/load_report_time 00:00:05/' \
  -e 's/^reporting_params .*/reporting_params accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00/' \
  > "$WORK/global"
apply conf "$WORK/global" show_global

qconf -ssconf | sed -e "s/^schedule_interval .*/schedule_interval $INTERVAL/" \
  -e 's/^flush_submit_sec .*/flush_submit_sec 1/' -e 's/^flush_finish_sec .*/flush_finish_sec 1/' > "$WORK/sched"
apply sconf "$WORK/sched" qconf -ssconf

# consumable "gpu" (so `-l gpu=N` is accepted)
if ! qconf -sc | grep -q '^gpu '; then
  { qconf -sc | grep -v '^#'; echo "gpu gpu INT <= YES YES 0 0"; } > "$WORK/complex"
  qc -Mc "$WORK/complex" || die "cannot add the gpu complex"
fi

cat > "$WORK/exechost" <<EOF
hostname $HOST
load_scaling NONE
complex_values gpu=$GPUS
user_lists NONE
xuser_lists NONE
projects NONE
xprojects NONE
usage_scaling NONE
report_variables NONE
EOF
if qconf -se "$HOST" >/dev/null 2>&1; then
  [ "$(qconf -se "$HOST" | awk '$1 == "complex_values" {print $2}')" = "gpu=$GPUS" ] \
    || qc -mattr exechost complex_values "gpu=$GPUS" "$HOST"
else
  qc -Ae "$WORK/exechost" || die "cannot add $HOST as execution host"
fi

cat > "$WORK/smp" <<'EOF'
pe_name smp
slots 9999
user_lists NONE
xuser_lists NONE
start_proc_args NONE
stop_proc_args NONE
allocation_rule $pe_slots
control_slaves FALSE
job_is_first_task TRUE
urgency_slots min
accounting_summary FALSE
qsort_args NONE
EOF
qconf -sp smp >/dev/null 2>&1 || qc -Ap "$WORK/smp" || die "cannot add PE smp"

printf 'name jobfleet\noticket 0\nfshare 0\nacl NONE\nxacl NONE\n' > "$WORK/jobfleet"
qconf -sprj jobfleet >/dev/null 2>&1 || qc -Aprj "$WORK/jobfleet" || die "cannot add project jobfleet"

cat > "$WORK/all.q" <<EOF
qname all.q
hostlist $HOST
seq_no 0
load_thresholds NONE
suspend_thresholds NONE
nsuspend 1
suspend_interval 00:05:00
priority 0
min_cpu_interval 00:05:00
processors UNDEFINED
qtype BATCH INTERACTIVE
ckpt_list NONE
pe_list smp
rerun FALSE
slots $SLOTS
tmpdir /tmp
shell /bin/bash
prolog NONE
epilog NONE
shell_start_mode unix_behavior
starter_method NONE
suspend_method NONE
resume_method NONE
terminate_method NONE
notify 00:00:60
owner_list NONE
user_lists NONE
xuser_lists NONE
subordinate_list NONE
complex_values NONE
projects NONE
xprojects NONE
calendar NONE
initial_state default
s_rt INFINITY
h_rt INFINITY
s_cpu INFINITY
h_cpu INFINITY
s_fsize INFINITY
h_fsize INFINITY
s_data INFINITY
h_data INFINITY
s_stack INFINITY
h_stack INFINITY
s_core INFINITY
h_core INFINITY
s_rss INFINITY
h_rss INFINITY
s_vmem INFINITY
h_vmem INFINITY
EOF
if qconf -sq all.q >/dev/null 2>&1; then
  apply q "$WORK/all.q" qconf -sq all.q
else
  qc -Aq "$WORK/all.q" || die "cannot add queue all.q"
fi

# ---- 5. sge_execd ----------------------------------------------------------------
pidf=$(execd_pidfile)
if [ -z "$pidf" ] || ! running sge_execd "$pidf"; then
  rm -f "$SPOOL"/execd/*/execd.pid
  /usr/sbin/sge_execd 9>&- </dev/null || { logs_tail; die "sge_execd failed"; }
  for _ in $(seq 100); do pidf=$(execd_pidfile); [ -n "$pidf" ] && running sge_execd "$pidf" && break; sleep 0.1; done
  [ -n "$pidf" ] && running sge_execd "$pidf" || { logs_tail; die "sge_execd did not start"; }
  echo "$(tr -dc 0-9 < "$pidf") sge_execd" > "$RUN_DIR/sge_execd.started"
  log "started sge_execd (pid $(tr -dc 0-9 < "$pidf"))"
fi

# ---- 6. a trivial job must run ---------------------------------------------------------
# a queue left in error state (E) by an earlier failure takes no jobs until cleared
qstat -f -q all.q | awk -v h="all.q@$HOST" '$1 == h && $NF ~ /E/ {exit 1}' || qmod -c "all.q@$HOST" >/dev/null || true
probe_out=$RUN_DIR/probe.out
if ! timeout "$TIMEOUT" qsub -sync y -b y -N jobfleet-probe -o /dev/null -e /dev/null true >"$probe_out" 2>&1; then
  echo "[ci/sge/start] ERROR: the probe job did not run within ${TIMEOUT}s" >&2
  cat "$probe_out" >&2; qstat -f >&2 || true; logs_tail
  exit 1
fi
log "cell ready: host $HOST, queue all.q ($SLOTS slots), scheduler interval $INTERVAL (logs: $SPOOL/*/messages)"
