"""Runs that never lose work: train with periodic atomic checkpoints and resume, evaluate into results files,
export a shipped checkpoint. The CLI is a thin layer over these; notebooks may call them directly.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch

from . import checkpoints, evaluation, inner, presets, results
from .config import Config
from .fast import distributed
from .train import build_model, load_dataset, meta_train, new_state, resume_state
from .callbacks import progress_bar
from .results import write_json

CHECKPOINT = "checkpoint.pt"
CURVE = "curve.json"
CURVE_WINDOW = 1000  # meta-iterations summarised by one point of a training curve
EXPORT_CHECK = dict(tasks=20, shots=1, eval_seed=0)  # re-evaluated by a test: must reproduce exactly on CPU


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a run after saving its checkpoint: ``--resume`` continues it."""


@contextlib.contextmanager
def _interrupt_at_a_boundary():
    """While training, a first SIGINT only raises a flag, which the run reads after each meta-iteration (after
    each chunk on the static path), where its state is whole: it saves a checkpoint there and stops. So a run
    stopped by Ctrl-C or ``timeout -s INT`` loses nothing. A second SIGINT interrupts at once. Where SIGINT is
    ignored (a shell's background job) it stays ignored, and outside the main thread, where Python cannot
    handle signals, it keeps its usual meaning."""
    asked = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield asked
        return

    def handler(signum, frame):
        if asked:
            raise KeyboardInterrupt
        asked.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield asked
    finally:
        signal.signal(signal.SIGINT, previous)


def train_run(config: Config, run_dir, resume: bool = False, checkpoint_every: int = 500, data_root=None,
              show_progress: bool = True, dataset=None, eval_set=None, callback=None) -> dict:
    """Train ``config`` in ``run_dir``: checkpoint every ``checkpoint_every`` iterations and at the end.
    ``callback`` also receives ``meta_train``'s events (a widget's progress bar, say).

    ``eval_set`` (see ``meta_train``) adds a learning curve: its points live in the run's history, so they
    survive an interruption with the rest of the run.

    ``resume`` continues the run's checkpoint (which must be of the same config: anything else is refused);
    without it, an existing checkpoint is never overwritten. Divergence (NaN/inf) stops the run with an error
    and leaves the last good checkpoint in place. Ctrl-C saves a checkpoint and raises ``RunInterrupted``.
    """
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1 (got {checkpoint_every})")
    if resume:
        saved = checkpoints.load_run(path, config.to_dict())
        # the resumed run executes as asked (e.g. a GPU run continued on a CPU): the saved config says how it began
        saved["config"] = {**saved["config"], **{k: getattr(config, k) for k in checkpoints.RESUMABLE_DIFFERENCES}}
        state = resume_state(saved)
    elif path.exists():
        raise ValueError(f"{run_dir} already holds a run checkpoint: pass --resume to continue it, "
                         f"or choose another --run-dir")
    else:
        state = new_state(config)
    if dataset is None and config.dataset != "sine":
        dataset = load_dataset(config, "train", data_root)
    start_iteration, save_seconds = state.iteration, []
    writer = distributed.world()[0] == 0  # under torchrun only rank 0 writes and shows progress
    bar = progress_bar(config.meta_iters, config.preset, start_iteration) if show_progress and writer else None

    def save(live):
        if not writer:
            return
        saved = live.state_dict()
        save_seconds.append(checkpoints.save_run(path, saved))
        for name, one in curve_files(saved).items():
            write_json(run_dir / name, curve_record(one))

    def on_event(event):
        if bar:
            bar(event)
        if callback is not None:
            callback(event)
        if interrupted:
            save(state)
            raise RunInterrupted(f"interrupted at meta-iteration {state.iteration} of {config.meta_iters}; "
                                 f"checkpoint saved in {run_dir}: add --resume to continue")
        if event["event"] == "step" and event["iteration"] % checkpoint_every == 0:
            save(state)

    # a finished run too: meta_train then only adds the final evaluation if an interruption lost it
    with _interrupt_at_a_boundary() as interrupted:
        meta_train(config, callback=on_event, eval_set=eval_set, dataset=dataset, state=state)
    save(state)  # after the final evaluation, which the last periodic checkpoint precedes
    wall = state.runs[0].history.wall_s
    seeds = {"seeds": list(config.seeds)} if config.seeds else {}
    return {"run_dir": str(run_dir), "checkpoint": str(path), "preset": config.preset, **seeds,
            "meta_iters_run": state.iteration, "meta_iters_schedule": config.meta_iters,
            "resumed_from": start_iteration, "train_wall_s": round(wall, 2),
            "it_per_s": round(state.iteration / max(wall, 1e-9), 2),
            "checkpoint_save_s": round(sum(save_seconds) / max(len(save_seconds), 1), 4),
            "processes": distributed.world()[1]}


def per_seed(saved: dict) -> list[dict]:
    """A run checkpoint's state dicts, one per run: itself, or each seed's of a several-seed run."""
    return saved["runs"] if "runs" in saved else [saved]


def curve_files(saved: dict) -> dict[str, dict]:
    """The training-curve files a run checkpoint leaves: ``curve.json``, or one ``curve-seedS.json`` per seed."""
    if "runs" not in saved:
        return {CURVE: saved}
    return {f"curve-seed{run['config']['seed']}.json": run for run in saved["runs"]}


def curve_record(saved: dict, window: int = CURVE_WINDOW) -> dict:
    """A run checkpoint's training curve, compact: the logged loss (each meta-iteration's mean over tasks of
    the first inner minibatch's loss) summarised over consecutive windows of ``window`` meta-iterations, as its
    mean and its minimum per window, with the config, the evaluations, wall time and iteration. ``ends`` holds
    each window's last meta-iteration; a run stopped mid-window ends with a shorter one. The checkpoint keeps
    every loss; this is what the report plots and what a finished run leaves behind."""
    history = saved["history"]
    losses = np.asarray(history["losses"], dtype=np.float64)
    ends = list(range(window, len(losses), window)) + ([len(losses)] if len(losses) else [])
    chunks = np.split(losses, ends[:-1]) if ends else []
    return {"config": history["config"], "iteration": saved["iteration"], "window": window, "ends": ends,
            "mean": [round(float(c.mean()), 5) for c in chunks], "min": [round(float(c.min()), 5) for c in chunks],
            "evals": history["evals"], "wall_s": history["wall_s"]}


def read_curve(path) -> dict:
    """A training curve (``curve_record``'s form) from its file, or from a run directory: its ``curve.json``,
    else, for a run that ships only its checkpoint, the same record built from the checkpoint."""
    path = Path(path)
    if path.is_dir():
        if not (path / CURVE).is_file() and (path / CHECKPOINT).is_file():
            saved = checkpoints.load_run(path / CHECKPOINT)
            if "runs" in saved:
                raise ValueError(f"{path} holds a run of several seeds: read one of its curve-seedS.json files")
            return curve_record(saved)
        if not (path / CURVE).is_file():
            raise FileNotFoundError(f"no {CURVE} or {CHECKPOINT} in {path}: `python -m reptile_edu train ... "
                                    f"--run-dir {path}` writes both with each checkpoint")
        path = path / CURVE
    curve = json.loads(path.read_text())
    missing = {"config", "iteration", "window", "ends", "mean", "min"} - curve.keys()
    if missing:
        raise ValueError(f"{path} is not a training curve (missing {', '.join(sorted(missing))})")
    if not len(curve["ends"]) == len(curve["mean"]) == len(curve["min"]):
        raise ValueError(f"{path} is not a training curve (ends, mean and min differ in length)")
    return curve


def read_curves(folder) -> dict[str, dict]:
    """Every training curve ``NAME.json`` in ``folder`` (``results/curves/``), by name, fewest ways first."""
    curves = {p.stem: read_curve(p) for p in Path(folder).glob("*.json")}
    return dict(sorted(curves.items(), key=lambda kv: (kv[1]["config"]["num_classes"], kv[0])))


def uniform_loss(config: dict) -> float:
    """The logged loss (the first inner minibatch's summed cross-entropy, before any inner step) of a uniform
    prediction: inner_batch_size * ln(num_classes). Each task permutes its labels, so by Jensen's inequality no
    initialisation has a lower expected logged loss; the curve measures confidence, not what was learned."""
    return config["inner_batch_size"] * math.log(config["num_classes"])


def _load_model_sources(source) -> list[dict]:
    """A run directory, a run checkpoint or a shipped checkpoint (name or path) -> params, state, config, ...;
    one per seed for a run of several seeds."""
    p = Path(source)
    run_file = p / CHECKPOINT if p.is_dir() else p
    if run_file.is_file():
        try:
            saved = checkpoints.load_run(run_file)
        except checkpoints.WrongKind:  # a shipped checkpoint given by path: read it below
            pass
        else:
            return [{"params": one["phi"], "inner_state": one["inner_state"], "config": one["config"],
                     "meta_iters_run": one["iteration"], "train_wall_s": one["history"]["wall_s"],
                     "checkpoint": str(run_file)} for one in per_seed(saved)]
    shipped = checkpoints.load_shipped(source)
    prov = shipped["provenance"]
    return [{"params": shipped["params"], "inner_state": shipped["inner_state"], "config": shipped["config"],
             "meta_iters_run": prov["meta_iters_run"], "train_wall_s": prov["train_wall_s"],
             "checkpoint": str(checkpoints.shipped_path(source))}]


def evaluate_weights(config: Config, params, inner_state, dataset, shots: int, tasks: int,
                     eval_seed: int = 0, chunk_size: int | None = None) -> dict:
    """``evaluation.evaluate`` with ``config``'s own settings (N, the official eval minibatch for ``shots``,
    eval steps, inner lr and optimiser): the one call that eval, export, the ablations and the shipped-checkpoint
    test share. Returns ``evaluate``'s dict plus the ``eval_batch`` used."""
    batch = presets.eval_batch_size(config.preset, shots, config.eval_batch_size)
    out = evaluation.evaluate(build_model(config), params, inner_state, dataset, num_classes=config.num_classes,
                              num_shots=shots, num_tasks=tasks, eval_batch_size=batch,
                              eval_inner_iters=config.eval_inner_iters, inner_lr=config.inner_lr, eval_seed=eval_seed,
                              optimizer=config.inner_optimizer, chunk_size=chunk_size)
    return out | {"eval_batch": batch}


def evaluate_source(source, shots=(1, 5), tasks: int = 10_000, eval_seed: int = 0, device: str = "cpu",
                    data_root=None, split: str = "test", dataset=None) -> dict:
    """The official evaluation of a run or checkpoint: one adaptation per task, both modes; a results record.

    A run of several seeds is evaluated seed by seed on the same tasks (the same ``eval_seed``): each evaluation
    then gives the mean over seeds as ``accuracy`` and ``ci95`` (the task-level interval, averaged), the
    standard deviation across seeds as ``seed_std``, and every seed's own numbers in ``per_seed``."""
    if not shots or min(shots) < 1 or tasks < 1:
        raise ValueError(f"shots and tasks must be >= 1 (got shots {list(shots)}, tasks {tasks}): e.g. --shots 1 5")
    commit = results.commit()  # the code that runs now (an evaluation may outlast the checkout's HEAD)
    loaded = _load_model_sources(source)
    configs = [Config(**one["config"]).replace(device=device) for one in loaded]
    config = configs[0]
    if config.dataset == "sine":
        raise ValueError("eval is for the image presets; the sine toy is evaluated by `python -m reptile_edu sine`")
    dataset = (dataset if dataset is not None else load_dataset(config, split, data_root)).to(device)
    # each seed's (params, inner state) on the device, moved once for every shot setting
    weights = [({name: v.to(device) for name, v in one["params"].items()}, inner.state_to(one["inner_state"], device))
               for one in loaded]
    evaluations = []
    for k in shots:
        outs = [evaluate_weights(cfg, params, state, dataset, k, tasks, eval_seed)
                for cfg, (params, state) in zip(configs, weights)]
        for mode in evaluation.MODES:
            spread = evaluation.across_seeds([out[mode]["accuracy"] for out in outs],
                                             [out[mode]["ci95"] for out in outs])
            entry = {"ways": config.num_classes, "shots": k, "mode": mode, "tasks": tasks,
                     "accuracy": round(spread["mean"], 4), "ci95": round(spread["ci95"], 4), "eval_seed": eval_seed,
                     "eval_batch": outs[0]["eval_batch"], "chunk_size": outs[0]["chunk_size"],
                     "eval_wall_s": round(sum(out["eval_wall_s"] for out in outs), 2)}
            if len(outs) > 1:
                entry["seed_std"] = round(spread["seed_std"], 4)
                entry["per_seed"] = [{"seed": cfg.seed, "accuracy": round(out[mode]["accuracy"], 4),
                                      "ci95": round(out[mode]["ci95"], 4)} for cfg, out in zip(configs, outs)]
            evaluations.append(entry)
    seed = [cfg.seed for cfg in configs] if len(configs) > 1 else config.seed
    return {"preset": config.preset, "algorithm": config.algorithm, "path": config.path,
            "meta_iters_run": loaded[0]["meta_iters_run"], "meta_iters_schedule": config.meta_iters,
            "train_wall_s": round(loaded[0]["train_wall_s"], 2), "device": results.device_name(device),
            "torch": str(torch.__version__), "commit": commit, "seed": seed,
            "checkpoint": loaded[0]["checkpoint"], "split": split, "evaluations": evaluations}


def export_check(config: Config, params, inner_state, dataset) -> dict:
    """The fixed 20-task CPU evaluation stored in a shipped checkpoint, all tasks in one chunk: the measured chunk
    size may differ between machines, and the check must not (the chunk changes float rounding)."""
    return evaluate_weights(config, params, inner_state, dataset, EXPORT_CHECK["shots"], EXPORT_CHECK["tasks"],
                            EXPORT_CHECK["eval_seed"], chunk_size=EXPORT_CHECK["tasks"])


def export_run(run_dir, name: str, data_root=None, dataset=None) -> dict:
    """Run checkpoint -> shipped checkpoint ``reptile_edu/checkpoints/NAME.pt``, with the accuracy of a fixed
    20-task CPU evaluation stored beside the weights (a test re-evaluates it and expects the same number). A run
    of several seeds gives one shipped checkpoint per seed, ``NAME-seedS.pt``, each an ordinary one."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"export name must be a plain file name (got {name!r})")
    saved = checkpoints.load_run(Path(run_dir) / CHECKPOINT)
    several = "runs" in saved
    commit = results.commit()
    exported = []
    for one in per_seed(saved):
        config = Config(**one["config"]).replace(device="cpu")
        if dataset is None:
            dataset = load_dataset(config, "test", data_root)
        check = export_check(config, one["phi"], one["inner_state"], dataset)
        provenance = {"meta_iters_run": one["iteration"], "meta_iters_schedule": config.meta_iters,
                      "train_wall_s": one["history"]["wall_s"], "commit": commit,
                      "torch": str(torch.__version__),
                      "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "check": dict(EXPORT_CHECK, **{m: check[m]["accuracy"] for m in evaluation.MODES})}
        path = checkpoints.shipped_path(f"{name}-seed{config.seed}" if several else name)
        checkpoints.save_shipped(path, one["phi"], one["inner_state"], one["config"], provenance)
        exported.append({"checkpoint": str(path), "bytes": path.stat().st_size, "check": provenance["check"]})
    return {"exported": exported} if several else exported[0]
