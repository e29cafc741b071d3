#!/bin/bash
#PBS -S /bin/bash
#PBS -N scan
#PBS -q short
#PBS -A belle
#PBS -l nodes=1:ppn=2:gpus=1,mem=1536mb,walltime=01:30:00
#PBS -m n
# jobfleet array 0-2 of scan: task i runs subjob i + 0,
# in that subjob's working directory, with its own stdout, stderr and exit code file.
jobfleet_subjob=$(( PBS_ARRAYID + 0 ))
cd /TMP/scan/"$jobfleet_subjob" || exit 97
exec /bin/bash submit.sh > stdout 2> stderr
