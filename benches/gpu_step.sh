#!/usr/bin/env bash
# wgpu training steps on a GPU machine: tokens/s of the `tiny` and `small` presets (model and
# dense twin) and the time of the first step (kernel compilation + autotuning), at cubecl's
# default autotune level and at `minimal`; then the tiny preset once more (does a second
# process start faster?), and, if time is left, the default `train` run.
#
#   benches/gpu_step.sh [BIN] [SECONDS]     # BIN: target/release/moe-train; SECONDS: 480
#
# Each part is independent: a failure is logged and the script goes on. Output is markdown-ish
# text on stdout; the train run's metrics.jsonl is copied to $OUT when OUT is set.
set -u
B=${1:-target/release/moe-train}
budget=${2:-480}
start=$(date +%s)
log=$(mktemp)
left() { echo $((budget - ($(date +%s) - start))); }

part() { # name, autotune level, args...
    local name=$1 level=$2
    shift 2
    echo
    [ "$(left)" -gt 5 ] || { echo "## $name: skipped, out of time"; return; }
    echo "## $name (CUBECL_AUTOTUNE_LEVEL=$level), $(left) s left"
    local t0
    t0=$(date +%s.%N)
    CUBECL_AUTOTUNE_LEVEL=$level timeout "$(left)" "$B" "$@" 2>&1 | tee "$log"
    echo "(exit ${PIPESTATUS[0]})"
    echo "process wall: $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }") s"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
part "tiny" balanced bench step --backend wgpu --warmup 3 --iters 20
# The matmul peak measured by the first part serves the others (each process would re-tune it).
peak=$(sed -n 's/.*(peak \([0-9.]*\) GFLOP\/s).*/\1e9/p' "$log" | head -1)
p=${peak:+--peak-flops $peak}
part "tiny" minimal bench step --backend wgpu --warmup 3 --iters 20 $p
part "small" balanced bench step --backend wgpu --config configs/small.toml --warmup 3 --iters 20 $p
part "small" minimal bench step --backend wgpu --config configs/small.toml --warmup 3 --iters 20 $p
part "tiny, second process" balanced bench step --backend wgpu --warmup 3 --iters 20 $p
if [ "$(left)" -gt 100 ]; then
    dir=$(mktemp -d)
    part "default train" minimal train --backend wgpu --out "$dir/run"
    if [ -n "${OUT:-}" ] && [ -f "$dir/run/metrics.jsonl" ]; then
        cp "$dir/run/metrics.jsonl" "$OUT/train-metrics.jsonl"
    fi
fi
