"""``python -m reptile_edu ...``: parse arguments, build a config, run, print; the last stdout line is JSON.

User errors (bad values, missing files or network, divergence) print one line on stderr and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .config import ALGORITHMS, PATHS, budget, smoke_mode
from .presets import FIG3_VARIANTS, PAPER, SCALES, SINE_SCHEDULES, sine_config


def _sine(args) -> dict:
    import torch

    from . import plots
    from .evaluation import sine_eval_set, sine_predictions, sine_probe
    from .models import SineMLP
    from .train import meta_train

    tasks = sine_eval_set(budget(100, 10))
    model = SineMLP()
    inits = {"before meta-training": model.init_params(torch.Generator().manual_seed(args.seed))}
    summary = {}
    for algorithm in args.algorithms:
        config = sine_config(algorithm, args.schedule, seed=args.seed)
        if args.meta_iters:
            config = config.replace(meta_iters=args.meta_iters, eval_interval=args.meta_iters)
        history = meta_train(config, eval_set=sine_probe(tasks, config.eval_inner_iters, config.inner_lr))
        inits[algorithm] = history.params
        summary[algorithm] = {"meta_iters": config.meta_iters, "mse_after_32": history.evals[-1]["mse"],
                              "train_s": round(history.wall_s, 2)}
        print(f"{algorithm}: {config.meta_iters} meta-iterations in {history.wall_s:.1f} s, "
              f"MSE after 32 steps {history.evals[-1]['mse']:.3f}", file=sys.stderr)
    fig = plots.sine_comparison(tasks.task(0), sine_predictions(model, inits, tasks.task(0)))
    fig.savefig(args.out, dpi=110)
    return {"out": str(args.out), "schedule": args.schedule, "results": summary}


def _expansion(args) -> dict:
    from .analysis import ALPHAS, expansion_study, format_table

    study = expansion_study(args.ks, args.alphas or ALPHAS, num_tasks=args.tasks or budget(100, 8),
                            hidden=args.hidden or budget(64, 16), seed=args.seed)
    print(format_table(study), file=sys.stderr)
    return {key: study[key] for key in ("rows", "slopes", "slopes_by_k", "alphas", "num_tasks", "hidden")}


def _train(args) -> dict:
    from . import presets, runs
    from .fast import distributed

    overrides = {k: v for k, v in (("algorithm", args.algorithm), ("path", args.path), ("meta_iters", args.meta_iters),
                                   ("device", args.device), ("seed", args.seed)) if v is not None}
    if args.seeds is not None:
        overrides["seeds"] = tuple(args.seeds)
    if args.deterministic:
        overrides["deterministic"] = True
    if args.algorithm == "maml":
        overrides["inner_optimizer"] = "sgd"  # second-order MAML differentiates through SGD steps only
    config = presets.preset(args.preset, args.scale, args.variant, **overrides)
    run_dir = args.run_dir or f"runs/{args.preset}-{args.variant or args.scale}" + ("-seeds" if args.seeds else "")
    distributed.init_from_env(config.device)  # under torchrun: join the process group (gloo or NCCL)
    return runs.train_run(config, run_dir, args.resume, args.checkpoint_every, args.data_root)


def _eval(args) -> dict:
    from . import runs
    from .results import write_results

    record = runs.evaluate_source(args.source, args.shots, args.tasks, args.eval_seed, args.device, args.data_root,
                                  args.split)
    for e in record["evaluations"]:
        print(f"{e['ways']}-way {e['shots']}-shot {e['mode']:>16}: {e['accuracy']:.2f} +- {e['ci95']:.2f}% "
              f"({e['tasks']} tasks)", file=sys.stderr)
    if args.results:
        write_results(args.results, record)
        record["results"] = args.results
    return record


def _ablation(args) -> dict:
    from . import ablations
    from .train import load_dataset

    cells = ablations.grid(args.grid, args.scale, tuple(args.seeds or ()))
    if args.only:
        unknown = sorted(set(args.only) - {c.name for c in cells})
        if unknown:
            raise ValueError(f"no run {unknown} in {args.grid} at scale {args.scale}: "
                             f"choose from {', '.join(repr(c.name) for c in cells)}")
        cells = [c for c in cells if c.name in args.only]
    if args.list:
        for c in cells:
            print(ablations.command(c, args.device), file=sys.stderr)
        return {"grid": args.grid, "scale": args.scale, "runs": [c.name for c in cells]}
    config = cells[0].config  # every cell of a grid is on the same dataset
    datasets = (load_dataset(config, "train", args.data_root), load_dataset(config, "test", args.data_root))
    done = {}
    for c in cells:
        out = ablations.run(c, args.runs_dir, args.results_dir, datasets=datasets, device=args.device)
        for record in out if isinstance(out, list) else [out]:
            final = record["final"]["non-transductive"]
            name = f"{c.name} (seed {record['seed']})" if c.config.seeds else c.name
            print(f"{name}: {final['accuracy']:.2f} +- {final['ci95']:.2f}% after {record['meta_iters_run']} "
                  f"meta-iterations ({record['train_wall_s']:.0f} s)", file=sys.stderr)
            done[name] = {"accuracy": final["accuracy"], "ci95": final["ci95"],
                          "train_wall_s": record["train_wall_s"],
                          "results": str(c.results_path(args.results_dir, record["seed"]))}
    return {"grid": args.grid, "scale": args.scale, "runs": done}


def _export(args) -> dict:
    from . import runs

    return runs.export_run(args.run_dir, args.name, args.data_root)


def _report(args) -> dict:
    from . import ablations, report, results, runs

    records = report.load_results(results.find("") or "results")
    throughput = results.find("gpu/throughput.json")
    block = report.readme_block(records, json.loads(throughput.read_text()) if throughput else None)
    out = {"results_files": len(records)}
    if args.readme:
        out["readme_changed"] = report.update_readme(args.readme, block)
    if args.figures:
        out["figures"] = report.readme_figures(args.figures, runs.read_curves(results.find("curves")),
                                               ablations.load("fig4", "laptop", results.find("ablations")))
    if not (args.readme or args.figures):
        print(block, file=sys.stderr)
    return out


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), like every other user error."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def _download(args) -> dict:
    from .data.download import download_omniglot

    root = download_omniglot(Path(args.data_root) / "omniglot" if args.data_root else None)
    return {"dataset": "omniglot", "root": str(root)}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m reptile_edu", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sine", help="meta-train the sine toy and write the adaptation figure")
    p.add_argument("--out", required=True, help="where to write the figure (PNG)")
    p.add_argument("--algorithms", nargs="+", default=["reptile", "fomaml", "maml"],
                   choices=ALGORITHMS)
    p.add_argument("--schedule", default="fast", choices=SINE_SCHEDULES,
                   help="'demo': the demo script's serial 30,000 iterations; 'fast': batched equivalents")
    p.add_argument("--meta-iters", type=int, default=None, help="override the schedule's length")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_sine)
    p = sub.add_parser("expansion", help="check the paper's section-5 expansion of MAML, FOMAML and Reptile")
    p.add_argument("--ks", nargs="+", type=int, default=[2, 3, 4, 5], help="minibatches per task (each >= 2)")
    p.add_argument("--alphas", nargs="+", type=float, default=None,
                   help="inner step sizes (default: 2.5e-4 doubling to 8e-3); each is also measured at 2x")
    p.add_argument("--tasks", type=int, default=None, help="sine tasks (default 100; smoke 8)")
    p.add_argument("--hidden", type=int, default=None, help="MLP width (default 64 as the demo; smoke 16)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_expansion)

    p = sub.add_parser("train", help="meta-train a preset with periodic checkpoints (resumable)")
    p.add_argument("--preset", required=True, choices=["sine", *PAPER])
    p.add_argument("--scale", default="smoke" if smoke_mode() else "paper", choices=SCALES)
    p.add_argument("--variant", choices=list(FIG3_VARIANTS), help="Figure 3 run (omniglot-fig3 only)")
    p.add_argument("--algorithm", choices=ALGORITHMS)
    p.add_argument("--path", choices=PATHS)
    p.add_argument("--meta-iters", type=int)
    p.add_argument("--device", choices=["cpu", "cuda"])
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int)
    seeds.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                       help="train one run per seed, all at once (stacked on the task dimension); one checkpoint")
    p.add_argument("--deterministic", action="store_true",
                   help="GPU: cuDNN's deterministic algorithms (bit-repeatable, slower) instead of autotuned ones")
    p.add_argument("--run-dir", help="default runs/PRESET-SCALE")
    p.add_argument("--resume", action="store_true", help="continue the run checkpoint in --run-dir")
    p.add_argument("--checkpoint-every", type=int, default=500, help="meta-iterations between checkpoints")
    p.add_argument("--data-root", help="holds omniglot/, miniimagenet/ and tieredimagenet/ (or is a dataset folder itself)")
    p.set_defaults(run=_train)

    p = sub.add_parser("eval", help="the official evaluation (both modes) of a run or checkpoint")
    p.add_argument("source", help="a run directory, a run checkpoint, or a shipped checkpoint (name or path)")
    p.add_argument("--shots", nargs="+", type=int, default=[1, 5])
    p.add_argument("--tasks", type=int, default=budget(10_000, 4))
    p.add_argument("--eval-seed", type=int, default=0)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--results", help="write a results file (results/NAME.json)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--data-root")
    p.set_defaults(run=_eval)

    p = sub.add_parser("ablation", help="the Figure 3 or Figure 4 grid: resumable runs into results/ablations/")
    p.add_argument("grid", choices=["fig3", "fig4"])
    p.add_argument("--scale", default="smoke" if smoke_mode() else "laptop", choices=SCALES)
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these cells (names as --list prints)")
    p.add_argument("--list", action="store_true", help="print one command per cell and run nothing")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                   help="train every cell for these seeds together (one results file per seed; seed 0's is the default)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--runs-dir", default="runs/ablations", help="run checkpoints (resumed if present)")
    p.add_argument("--results-dir", default="results/ablations")
    p.add_argument("--data-root")
    p.set_defaults(run=_ablation)

    p = sub.add_parser("export", help="turn a run checkpoint into a shipped checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--name", required=True, help="writes reptile_edu/checkpoints/NAME.pt")
    p.add_argument("--data-root")
    p.set_defaults(run=_export)

    p = sub.add_parser("report", help="the README's results section (and figures) from the stored records")
    p.add_argument("--readme", help="rewrite the generated section of this README (else print it)")
    p.add_argument("--figures", help="write the README's figures (PNG) into this folder, e.g. docs")
    p.set_defaults(run=_report)

    p = sub.add_parser("download", help="fetch Omniglot's original zips (checked; Mini-ImageNet is never downloaded)")
    p.add_argument("dataset", choices=["omniglot"])
    p.add_argument("--data-root", help="default $REPTILE_EDU_DATA or ~/.cache/reptile_edu/data")
    p.set_defaults(run=_download)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        result = args.run(args)
    except (ValueError, OSError, FloatingPointError) as exc:  # OSError: missing files, no network, no permission
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a training run has saved its checkpoint first (runs.RunInterrupted)
        print(f"stopped: {exc}" if str(exc) else "stopped", file=sys.stderr)
        return 130
    result["wall_s"] = round(time.perf_counter() - start, 2)
    print(json.dumps(result))
    return 0
