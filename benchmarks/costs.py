"""What MAML costs that FOMAML and Reptile do not: seconds and memory per meta-iteration as k grows.

    python benchmarks/costs.py                          # k = 1, 2, 5, 10, 20; a few minutes on this CPU
    REPTILE_EDU_SMOKE=1 python benchmarks/costs.py      # seconds (k = 1, 2, 3, meta-batch 1, no RSS)

Omniglot 5-way net (113,221 parameters), meta-batch 5 (the omniglot-5way preset's), inner batch 10, the SGD
inner loop for all three algorithms (second-order MAML is offered with SGD only), vectorised path, one thread.
k = minibatches per task = gradient evaluations per task, for every algorithm (``reptile_edu.costs``): Reptile
takes k steps; FOMAML and MAML take k-1 steps and differentiate the k-th batch, so they need k >= 2 and the
k = 1 row has Reptile (= joint training) only. Inputs are random binary images: cost does not depend on pixels.
Time: median of ``--repeats`` calls after one warm-up, on the same batches. Memory: ``saved_peak_bytes`` (peak
bytes the autograd graph holds for backward) and ``rss_delta_bytes`` (peak RSS growth of a fresh process);
why two, in ``reptile_edu/costs.py``. Writes ``results/costs/cpu.json``; the last line is one flat JSON object.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from reptile_edu import costs
from reptile_edu.config import budget, smoke_mode
from reptile_edu.results import write_json

ROOT = Path(__file__).resolve().parents[1]
NOTE = ("Measured on a 2-core CPU shared with several other processes (load average well above 2): "
        "seconds are noisy and only their ratios and growth with k are meaningful; memory figures are not affected.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=budget([1, 2, 5, 10, 20], [1, 2, 3]))
    parser.add_argument("--meta-batch", type=int, default=budget(5, 1))
    parser.add_argument("--repeats", type=int, default=budget(3, 1))
    parser.add_argument("--no-rss", action="store_true", help="skip the fresh-process RSS measurement")
    parser.add_argument("--out", default=None, help="default results/costs/cpu.json (smoke: results/costs/smoke/)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rss = not (args.no_rss or smoke_mode())
    out = Path(args.out) if args.out else ROOT / "results" / "costs" / ("smoke" if smoke_mode() else "") / "cpu.json"
    start = time.perf_counter()
    rows = costs.cost_rows(args.ks, meta_batch_size=args.meta_batch, repeats=args.repeats, rss=rss,
                           log=lambda row: print(json.dumps(row), flush=True))
    write_json(out, {
        "device": "cpu", "device_name": platform.processor() or platform.machine(), "threads": 1,
        "torch": torch.__version__, "smoke": smoke_mode(),
        "config": {"model": "OmniglotCNN", "num_classes": 5, "inner_batch_size": 10, "inner_optimizer": "sgd",
                   "meta_batch_size": args.meta_batch, "path": "vectorised", "ks": args.ks,
                   "repeats": args.repeats, "inputs": "random binary 28x28 images"},
        "k_meaning": "minibatches per task = gradient evaluations per task; FOMAML and MAML take k-1 inner steps "
                     "and differentiate the k-th batch (k >= 2); Reptile takes k steps (k = 1 is joint training)",
        "memory_meaning": {"saved_peak_bytes": "peak bytes held by the autograd graph for backward",
                           "rss_delta_bytes": "peak RSS growth of a fresh process over one meta-step"},
        "note": NOTE, "wall_s": round(time.perf_counter() - start, 1), "rows": rows})
    flat = {"device": "cpu", "meta_batch_size": args.meta_batch, "wall_s": round(time.perf_counter() - start, 1)}
    for row in rows:
        key = f"{row['algorithm']}_k{row['k']}"
        flat[f"{key}_s"] = round(row["median_s"], 4)
        flat[f"{key}_saved_mb"] = round(row["saved_peak_bytes"] / 2**20, 2)
    print(json.dumps(flat))


if __name__ == "__main__":
    main()
