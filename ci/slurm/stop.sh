#!/bin/bash
# ci/slurm/stop.sh - stop the daemons that ci/slurm/start.sh started, and nothing else.
# A daemon is stopped only if $RUN_DIR/<name>.started ("pid comm") names a live process
# whose /proc/<pid>/comm still matches; it gets SIGTERM, then SIGKILL after a timeout.
# Safe to run repeatedly. Configuration, state and logs are kept.
#
# Environment knobs:
#   JOBFLEET_SLURM_CANCEL_JOBS=1   cancel queued/running jobs first, so that no job or
#                                  slurmstepd outlives slurmd
#   JOBFLEET_SLURM_STOP_TIMEOUT=30 seconds to wait per daemon after SIGTERM
set -uo pipefail

RUN_DIR=/run/jobfleet-slurm
CANCEL_JOBS=${JOBFLEET_SLURM_CANCEL_JOBS:-1}
STOP_TIMEOUT=${JOBFLEET_SLURM_STOP_TIMEOUT:-30}

log() { echo "[ci/slurm/stop] $*"; }
[ "$(id -u)" = 0 ] || { echo "[ci/slurm/stop] ERROR: must be run as root" >&2; exit 1; }
exec 9>/run/jobfleet-slurm.lock   # start.sh and stop.sh never run concurrently
flock -w 300 9 || { echo "[ci/slurm/stop] ERROR: /run/jobfleet-slurm.lock is held" >&2; exit 1; }

# alive PID: exists and is not a zombie (without systemd, PID 1 may reap ~1 s late)
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
ours() {  # ours NAME: print the pid recorded for NAME if that process still runs as NAME
  local pid comm
  read -r pid comm 2>/dev/null < "$RUN_DIR/$1.started" || return 1
  [ -n "$pid" ] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] && echo "$pid"
}

if [ "$CANCEL_JOBS" = 1 ] && ours slurmctld >/dev/null && squeue -h -o %A 2>/dev/null | grep -q .; then
  log "cancelling all jobs"
  squeue -h -o %A 2>/dev/null | sort -u | xargs -r scancel 2>/dev/null
  for _ in $(seq 150); do squeue -h -t PD,R,CG,S 2>/dev/null | grep -q . || break; sleep 0.2; done
fi

rc=0
for name in slurmd slurmctld slurmdbd mariadbd munged; do
  [ -f "$RUN_DIR/$name.started" ] || continue
  if pid=$(ours "$name"); then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq $((STOP_TIMEOUT * 10))); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      log "$name ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null; sleep 0.5
      alive "$pid" && { echo "[ci/slurm/stop] ERROR: $name (pid $pid) still alive" >&2; rc=1; continue; }
    fi
  else
    log "$name is not running (stale marker)"
  fi
  rm -f "$RUN_DIR/$name.started"
done
log "done"
exit $rc
