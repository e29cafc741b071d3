#!/bin/bash
#BSUB -J single_job____rm_-rf
#BSUB -M 512MB
#BSUB -W 0:02
#BSUB -cwd /TMP/single
#BSUB -o /TMP/single/lsf.log
# jobfleet job single job; $(rm -rf /): runs the wrapper in its working directory, with its
# own stdout and stderr (LSF's job report goes to the -o file, not to these).
cd /TMP/single || exit 97
exec /bin/bash submit.sh > stdout 2> stderr
