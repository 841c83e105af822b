"""Accuracy at equal compute: Reptile, FOMAML and second-order MAML on the sine toy and a small Omniglot run.

    python benchmarks/costs_accuracy.py                       # a few CPU minutes (longer on a shared CPU)
    REPTILE_EDU_SMOKE=1 python benchmarks/costs_accuracy.py   # seconds

Equal compute = equal gradient evaluations: every algorithm gets the same meta-iterations, meta-batch and k
minibatches per task (k loss gradients per task each; MAML also pays its backward pass through the inner loop,
which the recorded wall time shows). Each algorithm keeps its own outer rule, as in the sine chapter
(``presets.sine_config``): Reptile interpolates (phi += eps * d, eps annealed to 0); FOMAML and MAML feed -d to
Adam (1e-3, annealed), the MAML paper's outer optimiser, because their d is one inner step's size.
* sine: ``sine_config(alg)`` (meta-batch 10, k = 5 batches of 10, inner SGD 0.02), all at FOMAML/MAML's
  1,000 iterations; error = MSE on the 50-point grid after 32 SGD steps on 10 points, 100 held-out tasks.
* Omniglot 5-way (real Omniglot, ``--data-root``): SGD inner loop (so MAML can run) at 0.01 on the
  summed loss of 10 examples, k = 5, train-shots 10, meta-batch 1 (as Figure 3's SGD runs), Reptile's
  meta-step 0.25 -> 0 (Figure 3's); evaluation: the official protocol with SGD fine-tuning (eval batch 5,
  ``eval_inner_iters`` steps), fixed-seed test tasks, 1-shot and 5-shot. Far shorter than the paper: the point
  is the comparison between the three at one budget, not the paper's accuracies.
Writes ``results/costs/accuracy.json`` (smoke: ``results/costs/smoke/``); last line one flat JSON object.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from reptile_edu import evaluation, meta_train
from reptile_edu.config import Config, budget, smoke_mode
from reptile_edu.presets import sine_config
from reptile_edu.config import COMPARED
from reptile_edu.data.omniglot import load_omniglot
from reptile_edu.train import build_model
from reptile_edu.results import write_json

ROOT = Path(__file__).resolve().parents[1]
NOTE = "2-core CPU shared with several other processes: wall times are noisy; accuracies and errors are not."


def sine_run(alg: str, meta_iters: int) -> dict:
    config = sine_config(alg, meta_iters=meta_iters, eval_interval=meta_iters)
    history = meta_train(config)
    mse = evaluation.sine_mse_after(SINE_MODEL, history.params, SINE_EVAL, 32, config.inner_lr)
    return {"algorithm": alg, "meta_iters": meta_iters, "gradient_evaluations": meta_iters *
            config.meta_batch_size * config.inner_iters, "train_wall_s": round(history.wall_s, 2),
            "mse": mse.mean().item(), "mse_ci95": 1.96 * mse.std().item() / len(SINE_EVAL) ** 0.5}


def omniglot_config(alg: str, meta_iters: int) -> Config:
    outer = (dict(outer_optimizer="interpolate", meta_step_size=0.25) if alg == "reptile"
             else dict(outer_optimizer="adam", meta_step_size=1e-3))
    return Config(preset="omniglot-costs", dataset="omniglot", algorithm=alg, num_classes=5, num_shots=5,
                  train_shots=10, inner_optimizer="sgd", inner_lr=0.01, inner_batch_size=10, inner_iters=5,
                  meta_step_size_final=0.0, meta_batch_size=1, meta_iters=meta_iters, eval_inner_iters=50,
                  eval_batch_size=5, eval_interval=meta_iters, seed=0, **outer)


def omniglot_run(alg: str, meta_iters: int, train, test, tasks: int, eval_iters: int) -> dict:
    config = omniglot_config(alg, meta_iters)
    history = meta_train(config, dataset=train)
    row = {"algorithm": alg, "meta_iters": meta_iters, "gradient_evaluations": meta_iters * config.inner_iters,
           "train_wall_s": round(history.wall_s, 2), "config": config.to_dict(), "eval_inner_iters": eval_iters}
    for shots in (1, 5):
        result = evaluation.evaluate(build_model(config), history.params, None, test, num_classes=5, num_shots=shots,
                                     num_tasks=tasks, eval_batch_size=config.eval_batch_size,
                                     eval_inner_iters=eval_iters, inner_lr=config.inner_lr, eval_seed=0,
                                     optimizer="sgd", chunk_size=50)
        row[f"{shots}shot"] = {mode: result[mode] for mode in evaluation.MODES}
    return row


SINE_MODEL = build_model(sine_config())
SINE_EVAL = evaluation.sine_eval_set(100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sine-iters", type=int, default=budget(1_000, 10))
    parser.add_argument("--omniglot-iters", type=int, default=budget(100, 3))
    parser.add_argument("--tasks", type=int, default=budget(100, 5))
    parser.add_argument("--eval-iters", type=int, default=budget(10, 2))
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "omniglot"))
    parser.add_argument("--skip-omniglot", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    sine = [sine_run(alg, args.sine_iters) for alg in COMPARED]
    for row in sine:
        print(json.dumps({"sine": row}), flush=True)
    omniglot = []
    if not args.skip_omniglot:
        train, test = (load_omniglot(args.data_root, split) for split in ("train", "test"))
        for alg in COMPARED:
            omniglot.append(omniglot_run(alg, args.omniglot_iters, train, test, args.tasks, args.eval_iters))
            print(json.dumps({"omniglot": {k: v for k, v in omniglot[-1].items() if k != "config"}}), flush=True)
    out = Path(args.out) if args.out else ROOT / "results" / "costs" / ("smoke" if smoke_mode() else "") / "accuracy.json"
    write_json(out, {"device": "cpu", "threads": 1, "torch": torch.__version__, "smoke": smoke_mode(),
                     "equal_compute": "same meta-iterations, meta-batch and k minibatches per task = equal "
                                      "gradient evaluations; wall time recorded",
                     "note": NOTE, "wall_s": round(time.perf_counter() - start, 1), "sine": sine,
                     "omniglot": omniglot})
    flat = {"wall_s": round(time.perf_counter() - start, 1)}
    flat.update({f"sine_mse_{r['algorithm']}": round(r["mse"], 4) for r in sine})
    flat.update({f"omniglot_5shot_{r['algorithm']}": round(r["5shot"]["transductive"]["accuracy"], 2)
                 for r in omniglot})
    print(json.dumps(flat))


if __name__ == "__main__":
    main()
