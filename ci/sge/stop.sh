#!/bin/bash
# ci/sge/stop.sh - stop the Grid Engine daemons that ci/sge/start.sh started, and nothing
# else. A daemon is stopped only if $RUN_DIR/<name>.started ("pid comm") names a live
# process with that comm; daemons someone else started are left alone. Jobs still running
# on the execution host are left to finish (sge_execd stops without killing them).
# Idempotent; the cell's configuration and packages stay, so start.sh is quick again.
set -euo pipefail

RUN_DIR=/run/jobfleet-sge

log() { echo "[ci/sge/stop] $*"; }
[ "$(id -u)" = 0 ] || { echo "[ci/sge/stop] ERROR: must be run as root" >&2; exit 1; }
[ -d "$RUN_DIR" ] || { log "nothing was started by ci/sge/start.sh"; exit 0; }
exec 9>/run/jobfleet-sge.lock
flock -w 300 9 || { echo "[ci/sge/stop] ERROR: /run/jobfleet-sge.lock is held" >&2; exit 1; }

alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# execd first: it reports to qmaster while it shuts down
for name in sge_execd sge_qmaster; do
  f=$RUN_DIR/$name.started
  [ -f "$f" ] || continue
  read -r pid comm < "$f" || true
  if [[ ${pid:-} =~ ^[0-9]+$ ]] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then
    log "stopping $comm (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 300); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      log "$comm (pid $pid) still running after 30 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  else
    log "$name: recorded pid ${pid:-?} is gone or is no longer $name; nothing to stop"
  fi
  rm -f "$f"
done
