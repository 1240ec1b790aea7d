#!/usr/bin/env bash
# Interleaved side-by-side timing of whole training steps: one or two switchyard binaries and
# PyTorch eager (benches/torch_step.py), tiny then small, ROUNDS rounds each. Opt-in, not run
# by CI; needs python3 with torch. Run with nothing else on the machine.
#
#   benches/side_by_side.sh [ROUNDS] BINARY [BINARY2]
#
# tiny runs with --set switch.routing.sinkhorn_iters=0: the PyTorch script does not implement
# Sinkhorn selection, so both sides run the same model. Used for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: benches/side_by_side.sh ROUNDS BINARY [BINARY2]}
shift
bins=("$@")
[ ${#bins[@]} -ge 1 ] || { echo "usage: benches/side_by_side.sh ROUNDS BINARY [BINARY2]" >&2; exit 2; }
for preset in tiny small; do
  if [ "$preset" = tiny ]; then
    ours=(--set switch.routing.sinkhorn_iters=0); theirs=(--preset tiny)
  else
    ours=(--config configs/small.toml); theirs=(--config configs/small.toml)
  fi
  for r in $(seq 1 "$rounds"); do
    echo "== round $r $preset"
    for b in "${bins[@]}"; do
      echo "-- $b"
      "$b" bench step --iters 10 "${ours[@]}" | grep '^|'
    done
    echo "-- pytorch"
    python3 benches/torch_step.py "${theirs[@]}" | tail -2
  done
done
