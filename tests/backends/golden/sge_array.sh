#!/bin/bash
#$ -S /bin/bash
#$ -N scan
#$ -q all.q
#$ -P jobfleet
#$ -pe smp 2
#$ -l h_vmem=768M
#$ -l h_rt=1:30:00
#$ -l gpu=1
#$ -l arch=lx-amd64
# jobfleet array 0-2 of scan: task i runs subjob i + -1,
# in that subjob's working directory, with its own stdout, stderr and exit code file.
jobfleet_subjob=$(( SGE_TASK_ID + -1 ))
cd /TMP/scan/"$jobfleet_subjob" || exit 97
exec /bin/bash submit.sh > stdout 2> stderr
