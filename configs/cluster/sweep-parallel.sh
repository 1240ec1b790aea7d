#!/bin/bash
# A sweep on one multi-core machine: SHARDS concurrent processes on one output directory, then
# the merge (docs/sweep.md, "Sweeps on a cluster").
#
#   configs/cluster/sweep-parallel.sh                                    # 4 shards of sweep-quick
#   SWEEP=configs/sweep-text.toml DATA=data/fortunes SHARDS=2 configs/cluster/sweep-parallel.sh
#
# The same with GNU parallel instead of xargs:
#   parallel -j4 target/release/moe-train sweep --config configs/sweep-quick.toml --shard {}/4 ::: 0 1 2 3
#   target/release/moe-train sweep merge --config configs/sweep-quick.toml
#
# Killed or interrupted? Run it again: finished variants are skipped, the others resume.
# Each shard gets cores / SHARDS rayon threads unless RAYON_NUM_THREADS is set.
set -euo pipefail
SWEEP=${SWEEP:-configs/sweep-quick.toml}
SHARDS=${SHARDS:-4}
OUT=${OUT:-runs/$(basename "$SWEEP" .toml)}
MOE_TRAIN=${MOE_TRAIN:-target/release/moe-train}
DATA_ARGS=()
if [[ -n ${DATA:-} ]]; then DATA_ARGS=(--data "$DATA"); fi
threads=$(( $(nproc) / SHARDS ))
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-$(( threads > 0 ? threads : 1 ))}

seq 0 $((SHARDS - 1)) | xargs -P "$SHARDS" -I{} \
  "$MOE_TRAIN" sweep --config "$SWEEP" --out "$OUT" --shard "{}/$SHARDS" "${DATA_ARGS[@]}"
"$MOE_TRAIN" sweep merge --config "$SWEEP" --out "$OUT" "${DATA_ARGS[@]}"
