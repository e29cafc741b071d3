#!/bin/bash
#SBATCH --job-name=x
# jobfleet wrapper for golden?; rm -rf /
# Runs the setup lines, then the command; leaves the command's exit code in
# __BACKEND_CMD_EXIT_STATUS__ so the result survives the scheduler forgetting the job.
jobfleet_dir="$PWD"
jobfleet_finish() {
    trap '' INT TERM
    printf '%s\n' "$1" >| "$jobfleet_dir/__BACKEND_CMD_EXIT_STATUS__"
    exit "$1"
}
trap 'jobfleet_finish 130' INT
trap 'jobfleet_finish 143' TERM

# --- setup
export LC_ALL=C
source /opt/env.sh
cd "$jobfleet_dir" || jobfleet_finish 1

# --- command
python3 run.py 'a b' '$X' 'it'"'"'s'
jobfleet_finish $?
