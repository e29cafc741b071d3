#!/bin/bash
#PBS -S /bin/bash
#PBS -N single_job____rm_-rf
#PBS -l select=1:mem=512mb
#PBS -l walltime=00:01:01
# jobfleet job single job; $(rm -rf /): PBS starts jobs in the home directory, so this runs
# the job's wrapper in its working directory, with its own stdout, stderr and exit code file.
cd /TMP/single || exit 97
exec /bin/bash submit.sh > stdout 2> stderr
