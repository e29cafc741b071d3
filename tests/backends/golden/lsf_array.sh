#!/bin/bash
#BSUB -J 'scan[1-3]'
#BSUB -q short
#BSUB -n 2
#BSUB -R 'span[hosts=1]'
#BSUB -M 1536MB
#BSUB -W 1:30
#BSUB -P belle
#BSUB -gpu num=1
#BSUB -R 'select[type==X86_64]'
#BSUB -cwd /TMP/scan
#BSUB -o /TMP/scan/lsf-logs/%J_%I.log
# jobfleet array 0-2 of scan: task i runs subjob i + -1,
# in that subjob's working directory, with its own stdout, stderr and exit code file.
jobfleet_subjob=$(( LSB_JOBINDEX + -1 ))
cd /TMP/scan/"$jobfleet_subjob" || exit 97
exec /bin/bash submit.sh > stdout 2> stderr
