"""GPU throughput of the three paper presets and the time each full schedule would take.

    python benchmarks/gpu_throughput.py --data-root .data --out results/gpu/throughput.json   # on a GPU, ~2 min
    REPTILE_EDU_SMOKE=1 python benchmarks/gpu_throughput.py --device cpu --out /tmp/t.json  # checks the script

Per preset, ``benchmarks/meta_train.py``'s measurement (naive, faithful, vectorised and, on CUDA, the CUDA-graph
path; evaluation tasks/s). Omniglot presets use the real train split where ``--data-root`` holds ``omniglot/``;
Mini-ImageNet always uses random pixels of its shape (the speed does not depend on the pixels, and its 1.3 GB of
JPEGs need not travel to the GPU machine for a timing). Projections: ``meta_iters / rate`` for each training
path, and 10,000 evaluation tasks at the 1-shot rate for each of the two shot settings (5-shot adapts on 5x the
support images with the same 50 steps of the same minibatch size, so the 1-shot rate is a fair estimate of
both). Writes the nested record to ``--out``; the last stdout line is one flat JSON summary.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from meta_train import PATHS, measure  # noqa: E402

from reptile_edu import presets, results  # noqa: E402
from reptile_edu.fast import graphs  # noqa: E402

PRESETS = ("omniglot-5way", "omniglot-20way", "miniimagenet-5way")
EVAL_TASKS = 10_000


def projections(row: dict, meta_iters: int) -> dict:
    paths = [p for p in PATHS if f"{p}_it_s" in row]
    out = {f"{p}_train_min": round(meta_iters / row[f"{p}_it_s"] / 60, 2) for p in paths}
    if "vectorised_eval_tasks_s" in row:
        out["eval_min"] = round(2 * EVAL_TASKS / row["vectorised_eval_tasks_s"] / 60, 2)
    return out


def command(argv: list[str]) -> str:
    """The command line as run, less ``--out PATH`` (a machine's own path; the record is that file)."""
    keep = [a for i, a in enumerate(argv) if a != "--out" and (i == 0 or argv[i - 1] != "--out")]
    return "python " + " ".join(keep)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--data-root", help="holds omniglot/ (real Omniglot train split); default: random pixels")
    parser.add_argument("--out", required=True, help="where to write the JSON record")
    parser.add_argument("--skip-eval", action="store_true", help="time training only")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS, help="what to time (default all)")
    args = parser.parse_args()
    rows, start = [], time.perf_counter()
    for name in PRESETS:
        config = presets.preset(name, "paper")
        root = args.data_root if args.data_root and config.dataset == "omniglot" else None
        row = measure(name, args.device, root, args.paths, not args.skip_eval)
        row.update(meta_iters=config.meta_iters, **projections(row, config.meta_iters))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    record = {"device": results.device_name(args.device), "torch": torch.__version__, "commit": results.commit(),
              "cuda_graphs": graphs.enabled(),
              "command": command(sys.argv), "bench_wall_s": round(time.perf_counter() - start, 1),
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    summary = {"device": record["device"]}
    for row in rows:  # the fastest path measured, per preset
        fastest = max((p for p in PATHS if f"{p}_it_s" in row), key=lambda p: row[f"{p}_it_s"])
        summary[f"{row['preset']}_path"] = fastest
        summary[f"{row['preset']}_it_s"] = row[f"{fastest}_it_s"]
        summary[f"{row['preset']}_train_min"] = row[f"{fastest}_train_min"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
