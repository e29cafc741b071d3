#!/bin/bash
#SBATCH --job-name=scan
#SBATCH --cpus-per-task=2
#SBATCH --mem=1536M
#SBATCH --time=0-01:30:00
#SBATCH --partition=short
#SBATCH --account=belle
#SBATCH --gpus=1
#SBATCH --nodes=1
#SBATCH --constraint=avx2
# jobfleet array 0-2 of scan: task i runs subjob i + 0,
# in that subjob's working directory, with its own stdout, stderr and exit code file.
jobfleet_subjob=$(( SLURM_ARRAY_TASK_ID + 0 ))
cd /TMP/scan/"$jobfleet_subjob" || exit 97
exec /bin/bash submit.sh > stdout 2> stderr
