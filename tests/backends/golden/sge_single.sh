#!/bin/bash
#$ -S /bin/bash
#$ -N single_job____rm_-rf
#$ -l h_vmem=512M
#$ -l h_rt=0:01:01
# jobfleet wrapper for single job; $(rm -rf /)
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

# --- command
echo 'a b'
jobfleet_finish $?
