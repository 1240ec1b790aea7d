#!/bin/bash
# A sweep as a Slurm job array: one array task per shard, then one merge job.
#
#   sbatch configs/cluster/sweep-slurm.sh                  # 8 shards of configs/sweep-quick.toml
#   SWEEP=configs/sweep-text.toml OUT=runs/text sbatch --array=0-3 configs/cluster/sweep-slurm.sh
#   # the report, once every task has ended (or by hand at any time, for a partial one):
#   sbatch --dependency=afterany:<array job id> --wrap \
#     "target/release/moe-train sweep merge --config configs/sweep-quick.toml --out runs/sweep-quick"
#
# Each task runs `moe-train sweep` without --shard: it reads SLURM_ARRAY_TASK_ID,
# SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_STEP and SLURM_ARRAY_TASK_COUNT, so the shard count
# is the array's size. Use one range (0-7, 1-8, 0-14:2); a list with gaps (1,3,7) is refused.
# A variant goes to shard FNV-1a(name) mod N: re-running a task, or all of them after adding
# variants, retrains nothing that has finished. Requeued or re-submitted tasks resume their
# variant from its last checkpoint (the SIGTERM that --signal=B:TERM@120 sends two minutes
# before the time limit saves one; exit status 143).
# The output directory must be on a file system every node sees (docs/sweep.md).
#
#SBATCH --job-name=switchyard-sweep
#SBATCH --array=0-7
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --signal=B:TERM@120
#SBATCH --output=slurm-%A_%a.out

set -euo pipefail
SWEEP=${SWEEP:-configs/sweep-quick.toml}
OUT=${OUT:-runs/$(basename "$SWEEP" .toml)}
MOE_TRAIN=${MOE_TRAIN:-target/release/moe-train}

# `exec` lets Slurm's SIGTERM reach moe-train, which checkpoints before it exits.
exec "$MOE_TRAIN" sweep --config "$SWEEP" --out "$OUT"
