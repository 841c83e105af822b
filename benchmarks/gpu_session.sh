#!/usr/bin/env bash
# One GPU-machine call for the GPU issues: readiness (the CUDA-graph tests), throughput of the three presets, then
# a queue of paper schedules, each resumed from runs/PRESET-SCALE/checkpoint.pt where one exists and, once complete,
# exported and evaluated on 10,000 tasks on the GPU. What is worth keeping is copied to $OUT (the device tool
# brings back 8 files at most: the throughput record and, per preset, the run checkpoint and its training curve
# (for results/curves/), then once the schedule is complete the shipped checkpoint and the results file).
#
#   OUT=/tmp/out REPTILE_EDU_COMMIT=$(git rev-parse --short HEAD) bash benchmarks/gpu_session.sh [SECONDS]
#
# From the repository root, with .data/omniglot/ holding the two Omniglot zips (and .data/cache/ its decoded
# cache, optional). Mini-ImageNet: .data/miniimagenet/ with the full set's zips, checked against
# benchmarks/miniimagenet_full.sha256; training needs train_part1.zip and train_part2.zip (52 MB each, so one per
# call to a warm machine: a call carries 64 MiB with the tree), the export and the evaluation test.zip too.
# SECONDS (default 540) bounds the whole script: a run is stopped (SIGINT: it saves its checkpoint at the next
# iteration boundary and exits) early enough to leave time for its export and evaluation, and a preset is not
# started with under a minute of training left. Settings (environment): QUEUE (default "omniglot-5way
# omniglot-20way miniimagenet-5way"; a preset with its results file is skipped), BENCH=0 to skip the throughput,
# BENCH_ARGS (e.g. "--paths vectorised graphed --skip-eval"), KEEP (seconds kept for export + evaluation; 0 when
# the schedule cannot end in this call), DEVICE, SCALE, TASKS. On a CPU first:
#   OUT=/tmp/out DEVICE=cpu SCALE=smoke TASKS=20 REPTILE_EDU_SMOKE=1 bash benchmarks/gpu_session.sh 300
set -uo pipefail
BUDGET=${1:-540}
DEVICE=${DEVICE:-cuda}
SCALE=${SCALE:-paper}
TASKS=${TASKS:-10000}
QUEUE=${QUEUE:-omniglot-5way omniglot-20way miniimagenet-5way}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 REPTILE_EDU_DATA=$PWD/.data REPTILE_EDU_CACHE=$PWD/.data/cache
: "${OUT:?set OUT to the folder that receives the results}"

[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import sys, torch, numpy, PIL, tqdm; print('python', sys.version.split()[0], 'torch', torch.__version__)"
if ! python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_fast_graphs.py; then
    echo "CUDA-graph tests failed: training runs the static step eagerly" >&2
    export REPTILE_EDU_CUDA_GRAPHS=0
fi
if [ "${BENCH:-1}" != 0 ]; then
    python3 benchmarks/gpu_throughput.py --device "$DEVICE" --data-root .data --out "$OUT/gpu_throughput.json" \
        ${BENCH_ARGS:-}
fi

complete() {  # is the run in $1 at the end of its schedule?
    python3 -c "import json, sys; h = json.load(open('$1/curve.json')); sys.exit(h['iteration'] < h['config']['meta_iters'])"
}

MINI=.data/miniimagenet
for PRESET in $QUEUE; do
    RUN=runs/$PRESET-$SCALE
    NAME=$PRESET-$SCALE
    if [ -f "results/$NAME.json" ]; then
        echo "$PRESET: done already (results/$NAME.json)" >&2
        continue
    fi
    if [ "$PRESET" = miniimagenet-5way ] && [ "$SCALE" = paper ] && { [ ! -f $MINI/train_part1.zip ] ||
            [ ! -f $MINI/train_part2.zip ] || ! sha256sum -c --ignore-missing benchmarks/miniimagenet_full.sha256; }
    then
        echo "$PRESET: skipped: training needs $MINI/train_part{1,2}.zip of the full set (sha256 as in SOURCE.md)" >&2
        continue
    fi
    # seconds kept for export + 2 x 10,000-task eval; KEEP=0 where the schedule cannot end in this call anyway
    KEEP_S=${KEEP:-$([ "$PRESET" = omniglot-5way ] && echo 100 || echo 200)}
    LEFT=$((BUDGET - SECONDS - KEEP_S))
    if [ "$LEFT" -lt 60 ]; then
        echo "$PRESET: not started, $((BUDGET - SECONDS)) s left" >&2
        break
    fi
    RESUME=()
    [ -f "$RUN/checkpoint.pt" ] && RESUME=(--resume)
    echo "$PRESET: training for at most $LEFT s" >&2
    timeout -s INT "$LEFT" python3 -m reptile_edu train --preset "$PRESET" --scale "$SCALE" --device "$DEVICE" \
        --run-dir "$RUN" --checkpoint-every 2000 "${RESUME[@]}" 2>&1 | tr '\r' '\n' | tail -3
    [ -f "$RUN/checkpoint.pt" ] || continue
    cp "$RUN/checkpoint.pt" "$OUT/$NAME-checkpoint.pt"
    cp "$RUN/curve.json" "$OUT/$NAME-curve.json"
    if ! complete "$RUN"; then
        echo "$PRESET: schedule not finished: commit $RUN/checkpoint.pt (git add -f) and resume it next time" >&2
        break
    fi
    if [ "$PRESET" = miniimagenet-5way ] && [ "$SCALE" = paper ] && [ ! -f $MINI/test.zip ]; then
        echo "$PRESET: schedule finished: carry $MINI/test.zip for the export check and the evaluation" >&2
        break
    fi
    python3 -m reptile_edu export "$RUN" --name "$NAME"
    cp "reptile_edu/checkpoints/$NAME.pt" "$OUT/"
    python3 -m reptile_edu eval "reptile_edu/checkpoints/$NAME.pt" --tasks "$TASKS" --shots 1 5 --device "$DEVICE" \
        --results "$OUT/$NAME.json"
done
echo "script wall: $SECONDS s" >&2
