#!/usr/bin/env bash
# One GPU-machine call for the GPU issues: readiness (the CUDA-graph tests), throughput of the three presets, then
# the omniglot-5way paper schedule (resumed if runs/omniglot-5way-paper/checkpoint.pt exists), and, once it is
# complete, export + the 10,000-task evaluation on the GPU. Everything worth keeping is copied to $OUT.
#
#   OUT=/tmp/out REPTILE_EDU_COMMIT=$(git rev-parse --short HEAD) bash benchmarks/gpu_session.sh [SECONDS]
#
# From the repository root, with .data/omniglot/ holding the two Omniglot zips (and .data/cache/ its decoded cache,
# optional). SECONDS (default 540) bounds the whole script: training is stopped (SIGINT; its last periodic
# checkpoint survives) early enough to leave time for export and evaluation. Checking it on a CPU first:
#   OUT=/tmp/out DEVICE=cpu SCALE=smoke TASKS=20 REPTILE_EDU_SMOKE=1 bash benchmarks/gpu_session.sh 300
set -uo pipefail
BUDGET=${1:-540}
DEVICE=${DEVICE:-cuda}
SCALE=${SCALE:-paper}
TASKS=${TASKS:-10000}
RUN=runs/omniglot-5way-$SCALE
NAME=omniglot-5way-$SCALE
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 REPTILE_EDU_DATA=$PWD/.data REPTILE_EDU_CACHE=$PWD/.data/cache
: "${OUT:?set OUT to the folder that receives the results}"

[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import sys, torch, numpy, PIL, tqdm; print('python', sys.version.split()[0], 'torch', torch.__version__)"
if ! python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_graphs.py; then
    echo "CUDA-graph tests failed: training runs the static step eagerly" >&2
    export REPTILE_EDU_CUDA_GRAPHS=0
fi
# BENCH_ARGS: extra arguments for the throughput script (e.g. "--paths vectorised graphed --skip-eval")
python3 benchmarks/gpu_throughput.py --device "$DEVICE" --data-root .data --out "$OUT/gpu_throughput.json" ${BENCH_ARGS:-}

RESUME=()
[ -f "$RUN/checkpoint.pt" ] && RESUME=(--resume)
LEFT=$((BUDGET - SECONDS - ${KEEP:-90}))  # KEEP (default 90) seconds kept for export and evaluation
echo "training for at most $LEFT s" >&2
timeout -s INT "$LEFT" python3 -m reptile_edu train --preset omniglot-5way --scale "$SCALE" --device "$DEVICE" \
    --run-dir "$RUN" --checkpoint-every 2000 "${RESUME[@]}" >"$OUT/train.log" 2>&1
tail -c 3000 "$OUT/train.log" | tr '\r' '\n' | tail -4
cp "$RUN/checkpoint.pt" "$RUN/history.json" "$OUT/"
if python3 -c "import json, sys; h = json.load(open('$RUN/history.json')); sys.exit(h['iteration'] < h['config']['meta_iters'])"
then
    [ $((BUDGET - SECONDS)) -lt 60 ] && { echo "no time left to evaluate here: export and eval elsewhere" >&2; exit 0; }
    python3 -m reptile_edu export "$RUN" --name "$NAME"
    cp "reptile_edu/checkpoints/$NAME.pt" "$OUT/"
    python3 -m reptile_edu eval "reptile_edu/checkpoints/$NAME.pt" --tasks "$TASKS" --shots 1 5 --device "$DEVICE" --results "$OUT/$NAME.json"
else
    echo "schedule not finished: commit $RUN/checkpoint.pt and resume it next time" >&2
fi
echo "script wall: $SECONDS s" >&2
