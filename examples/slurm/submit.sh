#!/bin/bash
# Explains a corpus as a job array of SHARDS tasks, then merges the shards once all of them
# have succeeded. MODEL, DATA, TAP and OUT pass through to both jobs.
#   SHARDS=16 MODEL=resnet18_lstm.model DATA=data/hmdb51 examples/slurm/submit.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARDS=${SHARDS:-16}
mkdir -p logs
array=$(sbatch --parsable --array=0-$((SHARDS - 1)) --export=ALL examples/slurm/explain.sbatch)
sbatch --dependency=afterok:"$array" --export=ALL,SHARDS="$SHARDS" examples/slurm/merge.sbatch
echo "submitted array $array ($SHARDS shards) and its merge"
