"""The paper's section-6 ablations as grids of ordinary runs (docs/paper.md §7).

* Figure 3 (``fig3``): which inner-loop gradients the meta-update combines. With a plain SGD inner loop the
  Reptile displacement is -lr * (g1 + ... + gk) and FOMAML's is -lr * gk, so the ten README runs differ only
  in k, in FOMAML-or-not and in the meta-step that scales the sum (``combination``).
* Figure 4 (``fig4``): whether FOMAML's last minibatch overlaps the earlier ones. Reptile, FOMAML with a
  separate tail (``--foml-tail``), and FOMAML with a shared tail (cycling, and with replacement), as the number
  of inner iterations grows (panel a) and as the inner batch grows at fixed k (panel b). The paper does not
  publish these settings (docs/paper.md §7.2): ours are the official 5-way Omniglot preset with
  ``inner_iters`` and ``inner_batch_size`` varied, and a separate tail of batch/N shots per class, so the tail
  batch is exactly one inner batch. With 10 training shots a task holds 50 examples: a shared tail overlaps the
  earlier batches exactly when k * batch > 50.

Each run trains through ``runs.train_run`` (checkpointed, so an interrupted grid resumes where it stopped), is
scored on fixed test tasks along the way (the learning curve, Figure 3) and once more on more tasks at the end
(the reported accuracy +- CI), and leaves ``results/ablations/GRID-NAME.json``: notebook 06 draws from these.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checkpoints, evaluation, presets, results, runs
from .config import Config
from .train import load_dataset
from .results import write_json

GRIDS = ("fig3", "fig4")
FIG4_VARIANTS = {  # the separate tail's size follows the batch (``fig4_config``)
    "reptile": dict(algorithm="reptile"),
    "fomaml-separate-tail": dict(algorithm="fomaml"),
    "fomaml-shared-tail": dict(algorithm="fomaml"),
    "fomaml-shared-tail-replacement": dict(algorithm="fomaml", replacement=True),
}
# Per scale: Figure 4's inner iterations (panel a, at the preset's batch of 10), inner batches (panel b, at k =
# FIG4_BATCH_K), meta-iterations and final test tasks (no curve: one score per cell); Figure 3's test tasks per
# curve point, curve interval and final test tasks.
FIG4_INNER_ITERS = {"paper": (4, 8, 16, 32), "laptop": (4, 8, 16), "smoke": (2, 4)}
FIG4_BATCHES = {"paper": (5, 10, 20), "laptop": (5, 10, 20), "smoke": (5, 10)}
FIG4_BATCH_K = {"paper": 8, "laptop": 8, "smoke": 4}
FIG4_META_ITERS = {"paper": 100_000, "laptop": 600, "smoke": 4}
FIG4_FINAL_TASKS = {"paper": 10_000, "laptop": 300, "smoke": 3}
FIG3_EVAL = {"paper": (1_000, 2_000, 10_000), "laptop": (100, 300, 500), "smoke": (3, 10, 4)}
RUNS_DIR = "runs/ablations"
RESULTS_DIR = "results/ablations"


@dataclass(frozen=True)
class AblationRun:
    """One cell of a grid: a named config and how it is scored."""
    grid: str
    name: str
    scale: str
    config: Config
    curve_tasks: int
    final_tasks: int

    @property
    def slug(self) -> str:
        """A file name: ``fig3-laptop-mean-g1+g2`` for ``(g1+g2)/2``, ``fig4-laptop-reptile-k8`` for ``reptile k=8``."""
        name = self.name.replace(" k=", "-k").replace(" batch=", "-b")
        if name.startswith("("):
            name = "mean-" + name[1:name.index(")")]
        return f"{self.grid}-{self.scale}-{name}"

    def results_path(self, results_dir=RESULTS_DIR, seed: int = 0) -> Path:
        """Seed 0's file is ``SLUG.json``; another seed's ``SLUG-seedS.json``."""
        return Path(results_dir) / (f"{self.slug}.json" if seed == 0 else f"{self.slug}-seed{seed}.json")

    def run_dir(self, runs_dir=RUNS_DIR) -> Path:
        """``SLUG`` for seed 0, ``SLUG-seedS`` for another, ``SLUG-seeds-1-2`` for seeds trained together."""
        c = self.config
        seeds = ("-seeds-" + "-".join(map(str, c.seeds)) if c.seeds else f"-seed{c.seed}" if c.seed else "")
        return Path(runs_dir) / self.scale / (self.slug + seeds)


def grid(name: str, scale: str = "laptop", seeds: tuple[int, ...] = ()) -> list[AblationRun]:
    """The runs of Figure 3 (the ten README variants) or Figure 4 (variants x inner iterations) at a scale; with
    ``seeds``, every cell trains those seeds together (``train.SeedStates``) and writes a results file per seed."""
    if seeds:
        return [dataclasses.replace(cell, config=cell.config.replace(seeds=tuple(seeds))) for cell in grid(name, scale)]
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}: choose one of {', '.join(GRIDS)}")
    if scale not in presets.SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(presets.SCALES)}")
    if name == "fig3":
        curve_tasks, interval, final_tasks = FIG3_EVAL[scale]
        return [AblationRun(name, variant, scale, presets.preset("omniglot-fig3", scale, variant,
                                                                 eval_interval=interval), curve_tasks, final_tasks)
                for variant in presets.FIG3_VARIANTS]
    shape = [(k, 10) for k in FIG4_INNER_ITERS[scale]]
    shape += [(FIG4_BATCH_K[scale], b) for b in FIG4_BATCHES[scale] if (FIG4_BATCH_K[scale], b) not in shape]
    return [AblationRun(name, f"{variant} k={k}" + (f" batch={b}" if b != 10 else ""), scale,
                        fig4_config(variant, k, b, scale), 0, FIG4_FINAL_TASKS[scale])
            for k, b in shape for variant in FIG4_VARIANTS]


def fig4_config(variant: str, inner_iters: int, inner_batch_size: int, scale: str) -> Config:
    """The 5-way Omniglot preset with k and the inner batch set; a separate tail of one batch (batch/N shots)."""
    meta_iters = FIG4_META_ITERS[scale]
    config = presets.preset("omniglot-5way", scale, meta_iters=meta_iters, eval_interval=meta_iters,
                            inner_iters=inner_iters, inner_batch_size=inner_batch_size, **FIG4_VARIANTS[variant])
    if variant == "fomaml-separate-tail":
        config = config.replace(foml_tail=inner_batch_size // config.num_classes)
    return config


def shorten(ablation: AblationRun, meta_iters: int, curve_points: int = 3, curve_tasks: int = 50,
            final_tasks: int = 100) -> AblationRun:
    """The same cell on a shorter schedule (the meta-step anneals over it), e.g. for a live re-run."""
    interval = max(1, meta_iters // curve_points)
    config = ablation.config.replace(meta_iters=meta_iters, eval_interval=interval)
    return AblationRun(ablation.grid, ablation.name, f"live{meta_iters}", config, curve_tasks, final_tasks)


def combination(variant: str, inner_lr: float = 1.0) -> list[float]:
    """Figure 3: the meta-update of a variant as weights on the inner gradients, phi <- phi - sum_i w_i g_i
    (first meta-iteration; the meta-step then anneals). Reptile with SGD: w_i = eps*lr for every i; FOMAML
    (``--foml``): only the last, w_k = eps*lr. The averaged runs are sums with eps/k (README meta-steps)."""
    if variant not in presets.FIG3_VARIANTS:
        raise ValueError(f"unknown Figure 3 variant {variant!r}: one of {', '.join(presets.FIG3_VARIANTS)}")
    k, foml, eps = presets.FIG3_VARIANTS[variant]
    return [eps * inner_lr if (not foml or i == k - 1) else 0.0 for i in range(k)]


def _scores(out: dict) -> dict:
    return {mode: {"accuracy": round(out[mode]["accuracy"], 4), "ci95": round(out[mode]["ci95"], 4)}
            for mode in evaluation.MODES}


def _scorer(run: AblationRun, test, tasks: int):
    """``score(phi, inner_state)``: the official evaluation on ``tasks`` fixed test tasks (eval seed 0)."""
    def score(phi, inner_state):
        return _scores(runs.evaluate_weights(run.config, phi, inner_state, test, run.config.num_shots, tasks))
    return score


def run(ablation: AblationRun, runs_dir=RUNS_DIR, results_dir=RESULTS_DIR, data_root=None, datasets=None,
        device: str = "cpu", show_progress: bool = True, checkpoint_every: int = 100, callback=None):
    """Train one grid cell (resuming its checkpoint if one exists), score it and write its results file; a cell of
    several seeds writes one file per seed (``AblationRun.results_path``) and returns their records, in seed order.

    ``datasets`` = (train, test) ImageDatasets, else both are loaded from ``data_root``. A cell whose results
    files already hold this config's finished runs is not trained again: the files are returned.
    """
    config = ablation.config.replace(device=device)
    alone = {s: config.alone(s) for s in config.seeds} if config.seeds else {config.seed: config}
    paths = {s: ablation.results_path(results_dir, s) for s in alone}
    if all(p.exists() for p in paths.values()):
        done = [read(p) for p in paths.values()]
        if all(d["config"] == c.to_dict() and d["meta_iters_run"] == c.meta_iters for d, c in zip(done, alone.values())):
            return done if config.seeds else done[0]
    commit = results.commit()  # the code that trains, taken before training (the checkout may move meanwhile)
    train, test = datasets if datasets is not None else (load_dataset(config, "train", data_root),
                                                        load_dataset(config, "test", data_root))
    test = test.to(config.device)
    run_dir = ablation.run_dir(runs_dir)
    curve = _scorer(ablation, test, ablation.curve_tasks) if ablation.curve_tasks else None
    summary = runs.train_run(config, run_dir, (run_dir / runs.CHECKPOINT).exists(), checkpoint_every,
                             show_progress=show_progress, dataset=train, eval_set=curve, callback=callback)
    saved = checkpoints.load_run(run_dir / runs.CHECKPOINT, config.to_dict())
    records = []
    for one in runs.per_seed(saved):
        start = time.perf_counter()
        final = _scorer(ablation, test, ablation.final_tasks)(one["phi"], one["inner_state"])
        together = {"trained_with_seeds": list(config.seeds)} if config.seeds else {}
        record = {"grid": ablation.grid, "name": ablation.name, "scale": ablation.scale, "config": one["config"],
                  "seed": one["config"]["seed"], **together, "meta_iters_run": one["iteration"],
                  "meta_iters_schedule": config.meta_iters,
                  "eval": {"split": "test", "ways": config.num_classes, "shots": config.num_shots,
                           "eval_batch": presets.eval_batch_size(config.preset, config.num_shots,
                                                                 config.eval_batch_size),
                           "eval_inner_iters": config.eval_inner_iters, "eval_seed": 0,
                           "curve_tasks": ablation.curve_tasks, "curve_interval": config.eval_interval,
                           "final_tasks": ablation.final_tasks},
                  "curve": [{"iteration": e["iteration"], **{m: e[m] for m in evaluation.MODES}}
                            for e in one["history"]["evals"]],
                  "final": final, "train_wall_s": summary["train_wall_s"],
                  "final_eval_wall_s": round(time.perf_counter() - start, 2),
                  "device": results.device_name(config.device), "torch": str(torch.__version__),
                  "commit": commit}
        write_json(paths[record["seed"]], record)
        records.append(record)
    return records if config.seeds else records[0]


def read(path) -> dict:
    """One ablation results file; a malformed one is an error naming the file."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"ablation results {path} cannot be read ({exc}): re-run its grid cell") from None
    missing = [k for k in ("grid", "name", "config", "meta_iters_run", "curve", "final") if k not in record]
    if missing:
        raise ValueError(f"ablation results {path} misses {missing}: re-run its grid cell")
    return record


def load(grid_name: str, scale: str = "laptop", results_dir=RESULTS_DIR, seed: int = 0) -> dict[str, dict]:
    """The results files of a grid at a scale (of one seed) that exist, by run name, in the grid's order."""
    return {r.name: read(r.results_path(results_dir, seed)) for r in grid(grid_name, scale)
            if r.results_path(results_dir, seed).exists()}


def load_seeds(grid_name: str, scale: str = "laptop", results_dir=RESULTS_DIR) -> dict[str, list[dict]]:
    """Every seed's results of each cell that exist (seed 0 first, then by seed), by run name, in grid order."""
    found = {}
    for r in grid(grid_name, scale):
        paths = [r.results_path(results_dir)] + sorted(Path(results_dir).glob(f"{r.slug}-seed*.json"),
                                                       key=lambda p: int(p.stem.rsplit("-seed", 1)[1]))
        records = [read(p) for p in paths if p.exists()]
        if records:
            found[r.name] = records
    return found


def command(ablation: AblationRun, device: str = "cuda") -> str:
    """The CLI line that runs one cell (``--list`` prints these, e.g. to spread a paper-scale grid over GPUs)."""
    return (f"python -m reptile_edu ablation {ablation.grid} --scale {ablation.scale} --only '{ablation.name}' "
            f"--device {device}")
