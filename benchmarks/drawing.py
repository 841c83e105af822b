"""The drawing demo's latency (notebook 09): from the strokes of a drawing set to the probabilities shown.

    python benchmarks/drawing.py                 # 20 runs per setting
    REPTILE_EDU_SMOKE=1 python benchmarks/drawing.py   # 3 runs, for checking the script

One press of Predict renders every drawing (``drawing.render``) and adapts the shipped Reptile checkpoint to them
as the evaluation does (``drawing.classify``: the preset's 50 Adam steps, non-transductive prediction); the demo
also adapts joint training's and a random initialisation beside it (``drawing.classify_all``). Timed for 3-way and
5-way 1-shot sets of the stored example drawings, one test drawing, on one thread (a laptop's core) and, where
there are several cores, with all of them (the demo's three initialisations then run in parallel). Target: the
Reptile adaptation of a 5-way 1-shot set under 0.5 s on one core. Median and worst of the runs, after one warm-up.
Last line: one flat JSON object (keys in docs/cli.md §4).
"""
import json
import os
import statistics
import time

import torch

from reptile_edu import drawing
from reptile_edu.config import budget
from reptile_edu.results import device_name

TARGET_S = 0.5
RUNS = budget(20, 3)


def press(learners, ways):
    """One Predict: render the drawings, adapt every learner, return the probabilities."""
    examples = drawing.examples()
    support = [[drawing.render(examples[c]["drawings"][0])] for c in range(ways)]
    query = [drawing.render(examples[ways - 1]["drawings"][-1])]
    if len(learners) == 1:
        return drawing.classify(learners[0], support, query)
    return drawing.classify_all(learners, support, query)


def timed(learners, ways, threads):
    torch.set_num_threads(threads)
    press(learners, ways)  # warm-up
    seconds = []
    for _ in range(RUNS):
        start = time.perf_counter()
        press(learners, ways)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), max(seconds)


def main():
    cores = os.cpu_count() or 1
    learners = drawing.demo_learners("omniglot-5way-paper")
    out = {"device": device_name("cpu"), "cores": cores, "runs": RUNS,
           "eval_inner_iters": learners[0].eval_inner_iters}
    for ways in (3, 5):
        for label, chosen in (("reptile", learners[:1]), ("demo", learners)):
            for threads in sorted({1, cores}):
                median, worst = timed(chosen, ways, threads)
                key = f"{label}_{ways}way" + ("" if threads == 1 else "_cores")
                out[f"{key}_median_s"], out[f"{key}_worst_s"] = round(median, 4), round(worst, 4)
                print(f"{ways}-way 1-shot, {label} ({len(chosen)} initialisation{'s' * (len(chosen) > 1)}), "
                      f"{threads} thread{'s' * (threads > 1)}: median {median:.3f} s, worst {worst:.3f} s")
    out["target_s"] = TARGET_S
    out["target_met"] = out["reptile_5way_median_s"] < TARGET_S
    print(json.dumps(out))


if __name__ == "__main__":
    main()
