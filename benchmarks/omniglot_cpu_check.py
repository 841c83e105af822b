"""Real-data CPU check of the image engine (issue 4): does a short Omniglot run learn, on both paths?

``omniglot-5way`` hyper-parameters (meta-batch 5, inner batch 10, 5 inner Adam steps at 1e-3 with beta1 = 0,
train-shots 10, meta-step 1 -> 0) on a 3,000-meta-iteration schedule annealed over its own length, then the
official evaluation on 1,000 fixed-seed test tasks, 1-shot and 5-shot (eval batch 5, 50 steps), both modes.
Runs: ``faithful`` and ``vectorised`` Reptile, and ``joint`` (k = 1, the paper's control, which should be far
worse). Each run is its own process (``--run``), writing ``results/omniglot_cpu_check/RUN.json``; the merged
``results/omniglot_cpu_check.json`` is rewritten whenever a run finishes. Wall times are for a shared CPU.

    python benchmarks/omniglot_cpu_check.py --run faithful   # and vectorised, joint (in parallel is fine)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from reptile_edu import Config, evaluation, meta_train
from reptile_edu.data.omniglot import load_omniglot
from reptile_edu.train import build_model
from reptile_edu.utils import write_json

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"faithful": dict(path="faithful"), "vectorised": dict(path="vectorised"),
        "joint": dict(path="vectorised", algorithm="joint", inner_iters=1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", choices=sorted(RUNS), required=True)
    parser.add_argument("--meta-iters", type=int, default=3000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "omniglot"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    fields = dict(preset="omniglot-5way", dataset="omniglot", num_classes=5, num_shots=5, train_shots=10,
                  inner_optimizer="adam", inner_lr=1e-3, inner_batch_size=10, inner_iters=5,
                  meta_step_size=1.0, meta_step_size_final=0.0, meta_batch_size=5, meta_iters=args.meta_iters,
                  eval_inner_iters=50, eval_batch_size=5, eval_interval=args.meta_iters, seed=0)
    config = Config(**{**fields, **RUNS[args.run]})
    train, test = (load_omniglot(args.data_root, split) for split in ("train", "test"))

    def progress(event):
        if event["event"] == "step" and event["iteration"] % 250 == 0:
            print(json.dumps({"run": args.run, "iteration": event["iteration"], "loss": round(event["loss"], 3),
                              "wall_s": round(event["state"].history.wall_s, 1)}), flush=True)

    history = meta_train(config, progress, dataset=train)
    evaluations = []
    for shots in (1, 5):
        result = evaluation.evaluate(build_model(config), history.params, history.inner_state, test, 5, shots,
                                     args.tasks, config.eval_batch_size, config.eval_inner_iters, config.inner_lr,
                                     eval_seed=0, chunk_size=50)
        for mode in evaluation.MODES:
            evaluations.append({"ways": 5, "shots": shots, "mode": mode, **result[mode], "eval_seed": 0,
                                "eval_wall_s": round(result["eval_wall_s"], 1)})
            print(json.dumps({"run": args.run, **evaluations[-1]}), flush=True)
    out = ROOT / "results" / "omniglot_cpu_check"
    write_json(out / f"{args.run}.json", {"run": args.run, "config": config.to_dict(), "torch": torch.__version__,
                                          "train_wall_s": round(history.wall_s, 1), "evaluations": evaluations,
                                          "note": "2-core CPU shared with other jobs; wall times are indicative"})
    parts = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    write_json(ROOT / "results" / "omniglot_cpu_check.json", parts)
    print(json.dumps({"run": args.run, "train_wall_s": round(history.wall_s, 1),
                      **{f"{e['shots']}shot_{e['mode']}": round(e["accuracy"], 2) for e in evaluations}}))


if __name__ == "__main__":
    main()
