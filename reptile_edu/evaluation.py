"""How a meta-learned initialisation is judged.

Sine toy (the demo script's test): adapt a *copy* of the weights with full-batch SGD on 10 points of a
held-out task, then measure the mean squared error on the whole 50-point grid. Vectorised over tasks.

Few-shot images (``evaluate``): the official protocol of supervised-reptile's ``evaluate``, both prediction
modes from one adaptation per task, vectorised over chunks of tasks.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from . import inner
from . import tasks as tasks_lib
from .data import sine
from .config import MODES
from .models import Params, SineMLP, stack


@dataclass
class SineEvalSet:
    """A fixed list of held-out sine tasks with their few-shot support points and full grids."""
    amplitude: torch.Tensor
    phase: torch.Tensor
    x_support: torch.Tensor
    y_support: torch.Tensor
    x_grid: torch.Tensor
    y_grid: torch.Tensor

    def __len__(self):
        return self.amplitude.shape[0]

    def task(self, i: int) -> "SineEvalSet":
        return SineEvalSet(*(t[i:i + 1] for t in (self.amplitude, self.phase, self.x_support,
                                                   self.y_support, self.x_grid, self.y_grid)))


def sine_eval_set(num_tasks: int = 100, num_points: int = 10, seed: int = 12345) -> SineEvalSet:
    """Held-out tasks drawn from their own seed, so every run and every method sees the same ones."""
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be >= 1 (got {num_tasks})")
    gen = torch.Generator().manual_seed(seed)
    amplitude, phase = sine.sample_tasks(num_tasks, gen)
    xs, ys = sine.support_points(amplitude, phase, num_points, gen)
    xg, yg = sine.grid_targets(amplitude, phase)
    return SineEvalSet(amplitude, phase, xs, ys, xg, yg)


def sine_adapt(model, phi: Params, tasks: SineEvalSet, steps: int = 32, lr: float = 0.02,
               record=()) -> tuple[Params, dict[int, torch.Tensor]]:
    """Full-batch SGD on each task's support points from ``phi`` (never in place).

    Returns the adapted parameters [T, ...] and the grid predictions [T, 50] at each step in ``record``.
    """
    if steps < 0 or lr <= 0:
        raise ValueError(f"steps must be >= 0 and lr > 0 (got steps={steps}, lr={lr})")
    params = stack(phi, len(tasks))
    preds = {}
    for step in range(steps + 1):
        if step in record:
            with torch.no_grad():
                preds[step] = model.forward(params, tasks.x_grid)[..., 0]
        if step < steps:
            params, _ = inner.sgd_step(model, params, (tasks.x_support, tasks.y_support), lr)
    return params, preds


def sine_predictions(model, initialisations: dict[str, Params], task: SineEvalSet, steps=(0, 8, 16, 24, 32),
                     lr: float = 0.02) -> dict[str, dict[int, torch.Tensor]]:
    """For each named initialisation, its grid predictions after each number of ``steps`` of adaptation on
    ``task`` (what ``plots.sine_comparison`` draws)."""
    return {name: sine_adapt(model, phi, task, max(steps), lr, record=steps)[1]
            for name, phi in initialisations.items()}


def sine_mse_after(model, phi: Params, tasks: SineEvalSet, steps: int = 32, lr: float = 0.02) -> torch.Tensor:
    """Per-task MSE on the 50-point grid after ``steps`` SGD steps on the support points, [T]."""
    adapted, _ = sine_adapt(model, phi, tasks, steps, lr)
    with torch.no_grad():
        return model.loss(adapted, tasks.x_grid, tasks.y_grid)


def sine_probe(tasks: SineEvalSet, steps: int = 32, lr: float = 0.02):
    """An ``eval_set`` for ``train.meta_train``: ``probe(phi, inner_state) -> {"mse": mean over tasks}`` after
    ``steps`` SGD steps at ``lr`` (the demo script's test)."""
    model = SineMLP()

    def probe(phi, inner_state=None):
        return {"mse": sine_mse_after(model, phi, tasks, steps, lr).mean().item()}

    return probe


# --- Few-shot image classification (docs/paper.md §5) ---------------------------------------------------------

# Tasks adapted at once. On a GPU a chunk of 100 small tasks is launch-bound (each of the 50 steps is a few
# hundred tiny kernels), so more tasks share each launch. At 500 the largest chunk, Mini-ImageNet 5-shot, holds
# about 12 GiB per first-layer activation (26 images of 84x84x32 per task), well within a GPU of 40 GiB or more.
# On a CPU the best chunk is where a step's activations still fit the caches, which depends on the network, the
# batch and the CPU, so it is measured (``choose_chunk_size``).
CHUNK = {"cuda": 500}
CHUNK_CANDIDATES = (1, 2, 5, 10, 20, 50)
MEASURED_SECONDS = 0.04  # the length of one timing of a candidate
MEASURED_PASSES = 3
LONGEST_STEP_S = 0.25  # a step this long has no per-operation overhead left for larger chunks to share
_measured_chunks: dict[tuple, int] = {}


def choose_chunk_size(model, phi: Params, dataset, *, num_classes: int, num_shots: int, eval_batch_size: int,
                      optimizer: str = "adam") -> int:
    """How many tasks ``evaluate`` adapts at once: ``CHUNK`` on a GPU (100 on other accelerators); on a CPU the
    candidate with the least time per task and inner step on this dataset's images, timed once per process and
    setting (network, image and batch shape, dtype, optimiser, threads). Candidates are tried from small to large
    until one step takes ``LONGEST_STEP_S`` or two in a row take 30% more time per task than the best; those
    within 30% of it are timed ``MEASURED_PASSES`` more times in turn (the fastest timing counts), and within 5%
    of the best the smaller chunk is kept (less memory, and a choice that noise rarely flips)."""
    first = next(iter(phi.values()))
    if first.device.type != "cpu":  # an accelerator runs asynchronously: a host clock would time the launches only
        return CHUNK.get(first.device.type, 100)
    shape = tuple(dataset.images.shape[2:])
    batch = min(eval_batch_size, num_classes * num_shots)
    key = (type(model).__name__, num_classes, shape, batch, first.dtype, optimizer, torch.get_num_threads())
    if key not in _measured_chunks:
        gen = torch.Generator().manual_seed(0)  # its own generator: the evaluation's task list is untouched
        sx, sy, _, _ = tasks_lib.eval_episodes(dataset, num_classes, num_shots, 1, gen)
        x, y = tasks_lib.support_batches(sx.to(first.device, first.dtype), sy.to(first.device), batch, 1, gen)[0]
        runs, seconds = {}, {}  # per candidate: (params, steps) and the time per task and step of each timing

        def timing(c):
            params, steps = runs[c]
            start = time.perf_counter()
            inner.run(model, params, steps, optimizer, 1e-3)
            seconds[c].append((time.perf_counter() - start) / (c * len(steps)))

        for c in CHUNK_CANDIDATES:  # small to large, until two in a row are clearly slower than the best
            xs, ys = x.expand(c, *x.shape[1:]).contiguous(), y.expand(c, *y.shape[1:]).contiguous()
            params = stack(phi, c)
            start = time.perf_counter()
            inner.run(model, params, [(xs, ys)], optimizer, 1e-3)  # warm-up, and how long a step takes
            step_s = time.perf_counter() - start
            runs[c] = params, [(xs, ys)] * max(1, math.ceil(MEASURED_SECONDS / step_s))
            seconds[c] = []
            timing(c)
            best = min(min(t) for t in seconds.values())
            if step_s > LONGEST_STEP_S or (len(seconds) > 2 and all(min(seconds[d]) > 1.3 * best
                                                                     for d in list(seconds)[-2:])):
                break
        contenders = [c for c, t in seconds.items() if min(t) <= 1.3 * best]
        for _ in range(MEASURED_PASSES):  # more passes, interleaved: a burst of load slows every candidate alike
            for c in contenders:
                timing(c)
        per_task = {c: min(t) for c, t in seconds.items()}
        best = min(per_task.values())
        _measured_chunks[key] = min(c for c, t in per_task.items() if t <= 1.05 * best)
    return _measured_chunks[key]


def _sample_tasks(dataset, num_classes, num_shots, count, eval_batch_size, eval_inner_iters, replacement, generator):
    """``count`` evaluation tasks and their fine-tuning minibatches, drawn task by task from one generator.

    Drawing per task makes the task list a function of ``eval_seed`` alone: it does not depend on the chunk
    size (or on which path evaluates it), so every method is judged on the same tasks.
    """
    tasks, streams = [], []
    for _ in range(count):
        episode = tasks_lib.eval_episodes(dataset, num_classes, num_shots, 1, generator)
        tasks.append(episode)
        streams.append(tasks_lib.support_batches(episode[0], episode[1], eval_batch_size, eval_inner_iters,
                                                 generator, replacement))
    episode = [torch.cat(parts) for parts in zip(*tasks)]
    batches = [(torch.cat([s[i][0] for s in streams]), torch.cat([s[i][1] for s in streams]))
               for i in range(eval_inner_iters)]
    return episode, batches


@torch.no_grad()
def logits(model, params: Params, support_x, query_x) -> dict[str, torch.Tensor]:
    """Query logits [T, N, classes] in both modes, from the same adapted weights.

    transductive: one forward of the N queries alone (batch-norm statistics from the queries).
    non-transductive: N forwards, each of the whole support set plus one query; the prediction is the last row
    (statistics from the support set and that query; official ``_test_predictions``).
    """
    trans = model.forward(params, query_x)
    rows = [model.forward(params, torch.cat([support_x, query_x[:, j:j + 1]], dim=1))[:, -1]
            for j in range(query_x.shape[1])]
    return {"transductive": trans, "non-transductive": torch.stack(rows, dim=1)}


def predict(model, params: Params, support_x, query_x) -> dict[str, torch.Tensor]:
    """Predicted labels [T, N] of the queries in both modes (the argmax of ``logits``)."""
    return {mode: out.argmax(dim=-1) for mode, out in logits(model, params, support_x, query_x).items()}


def mean_ci(per_task: torch.Tensor) -> tuple[float, float]:
    """The mean over tasks and its 95% CI half-width, 1.96 * sample std / sqrt(T) (our method)."""
    x = per_task.double()
    n = x.numel()
    return x.mean().item(), (1.96 * x.std().item() / math.sqrt(n) if n > 1 else 0.0)


def summarise(per_task: torch.Tensor) -> dict:
    """Mean and 95% CI in percent over per-task accuracies (``mean_ci``)."""
    accuracy, ci = mean_ci(per_task * 100)
    return {"accuracy": accuracy, "ci95": ci, "tasks": per_task.numel()}


def across_seeds(values, ci95s) -> dict:
    """One measurement of several training seeds: the mean over seeds, the sample standard deviation across them
    (what the training run changes) and the task-level 95% CI averaged over seeds (what the sample of test tasks
    changes), to be read side by side."""
    v = torch.tensor(list(values), dtype=torch.float64)
    return {"mean": v.mean().item(), "seed_std": v.std().item() if v.numel() > 1 else 0.0,
            "ci95": sum(ci95s) / len(ci95s), "seeds": v.numel()}


def evaluate(model, phi: Params, inner_state: dict | None, dataset, *, num_classes: int, num_shots: int,
             num_tasks: int, eval_batch_size: int, eval_inner_iters: int, inner_lr: float, eval_seed: int = 0,
             optimizer: str = "adam", replacement: bool = False, chunk_size: int | None = None) -> dict:
    """The official evaluation on ``num_tasks`` fixed-seed N-way K-shot tasks, ``chunk_size`` tasks at a time
    (default ``choose_chunk_size``'s for phi's device, at most an equal share of the tasks per CPU worker). Within
    float rounding the results do not depend on it.

    Each task: N*K support images and one query per class; ``eval_inner_iters`` steps of the inner optimiser on
    ``eval_batch_size`` minibatches of the support set (cycling sampler), starting from phi and from the CURRENT
    carried inner state ``inner_state`` ([1, ...]; None = fresh), which is never modified (the official code
    restores the full state after each task); then both prediction modes from the same adapted weights.
    Returns ``{"transductive": {"accuracy", "ci95", "tasks"}, "non-transductive": {...}, "per_task": {mode:
    tensor [T]}, "chunk_size", "eval_wall_s"}``; accuracies and CIs in percent.
    """
    device = next(iter(phi.values())).device
    for name, value in (("num_classes", num_classes), ("num_shots", num_shots), ("num_tasks", num_tasks),
                        ("eval_inner_iters", eval_inner_iters), ("eval_batch_size", eval_batch_size),
                        ("chunk_size", 1 if chunk_size is None else chunk_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1 (got {value})")
    start = time.perf_counter()
    # On a CPU, chunks run in parallel, one per core with one thread each: these small operations gain little from
    # torch's intra-op threads. Each chunk's arithmetic is then the same whatever the number of cores.
    threads = torch.get_num_threads()
    workers = threads if device.type == "cpu" else 1
    torch.set_num_threads(1 if workers > 1 else threads)
    try:
        if chunk_size is None:  # the measured chunk, small enough that every worker gets one (no timing for 1)
            share = -(-num_tasks // workers)
            chunk_size = 1 if share == 1 else min(share, choose_chunk_size(
                model, phi, dataset, num_classes=num_classes, num_shots=num_shots, eval_batch_size=eval_batch_size,
                optimizer=optimizer))
        generator = torch.Generator().manual_seed(eval_seed)
        dtype = next(iter(phi.values())).dtype

        def score(chunk):  # per task and mode, the fraction of queries predicted right
            (sx, sy, qx, qy), batches = chunk
            batches = [(x.to(device, dtype), y.to(device)) for x, y in batches]
            count = sy.shape[0]
            params, _, _ = inner.run(model, stack(phi, count), batches, optimizer, inner_lr,
                                     inner.expand_state(inner_state, count) if optimizer == "adam" else None)
            preds = predict(model, params, sx.to(device, dtype), qx.to(device, dtype))
            return {mode: (preds[mode] == qy.to(device)).double().mean(dim=1).cpu() for mode in MODES}

        done, pending = [], []
        with ThreadPoolExecutor(workers) as pool:
            try:
                for first in range(0, num_tasks, chunk_size):  # drawn in order here: the task list is eval_seed's
                    chunk = _sample_tasks(dataset, num_classes, num_shots, min(chunk_size, num_tasks - first),
                                          eval_batch_size, eval_inner_iters, replacement, generator)
                    pending.append(pool.submit(score, chunk))
                    if len(pending) > workers:  # at most one chunk waiting per worker: memory stays bounded
                        done.append(pending.pop(0).result())
                done += [future.result() for future in pending]
            except BaseException:  # Ctrl-C or an error: drop the chunks not started
                for future in pending:
                    future.cancel()
                raise
    finally:
        torch.set_num_threads(threads)
    per_task = {mode: torch.cat([d[mode] for d in done]) for mode in MODES}
    result = {mode: summarise(per_task[mode]) for mode in MODES}
    result.update(per_task=per_task, chunk_size=chunk_size, eval_wall_s=time.perf_counter() - start)
    return result


# --- One episode up close ------------------------------------------------------------------------------------
# ``evaluate`` answers "how accurate, over thousands of tasks"; these answer "what did adaptation change on THIS
# task": the same adaptation (``inner.run`` on ``tasks.support_batches``) and the same two prediction modes
# (``logits``), before and after, for one episode.

def sample_episode(dataset, num_classes: int = 5, num_shots: int = 1, eval_seed: int = 0):
    """One evaluation task ``(support_x, support_y, query_x, query_y)`` with T = 1, fixed by ``eval_seed``."""
    return tasks_lib.eval_episodes(dataset, num_classes, num_shots, 1, torch.Generator().manual_seed(eval_seed))


def adapt(model, phi, inner_state, support_x, support_y, *, eval_inner_iters: int = 50, eval_batch_size: int = 5,
          inner_lr: float = 1e-3, optimizer: str = "adam", eval_seed: int = 0) -> tuple[Params, torch.Tensor]:
    """One task's fine-tuning as ``evaluate`` runs it: ``eval_inner_iters`` steps from ``phi`` and the carried
    ``inner_state`` (never modified) on minibatches of ``eval_batch_size`` drawn by the cycling sampler from
    ``eval_seed`` (a batch larger than the support set takes from the next pass over it, as the official
    sampler). ``support_x [1, S, C, H, W]``, ``support_y [1, S]``. Returns the adapted weights ([1, ...]) and the
    losses [k]."""
    if eval_inner_iters < 0:
        raise ValueError(f"eval_inner_iters must be >= 0 (got {eval_inner_iters})")
    start = stack(phi, 1)
    if not eval_inner_iters:
        return start, torch.zeros(0)
    batches = tasks_lib.support_batches(support_x, support_y, eval_batch_size, eval_inner_iters,
                                        torch.Generator().manual_seed(eval_seed))
    state = inner.expand_state(inner_state, 1) if optimizer == "adam" else None
    params, _, losses = inner.run(model, start, batches, optimizer, inner_lr, state)
    return params, losses[:, 0]


def adapt_episode(model, phi, inner_state, episode, *, eval_inner_iters: int = 50, eval_batch_size: int = 5,
                  inner_lr: float = 1e-3, optimizer: str = "adam", eval_seed: int = 0) -> dict:
    """Adapt ``phi`` to one episode exactly as the official evaluation does, and report before/after.

    Returns ``{"before": {mode: preds [N]}, "after": {...}, "probs_before"/"probs_after": [N, N]
    (non-transductive), "accuracy_before"/"accuracy_after": {mode: percent}, "query_y": [N], "losses": [k],
    "params": the adapted weights ([1, ...])}``.
    ``inner_state`` ([1, ...] or None) is the carried inner state the evaluation starts from; never modified.
    """
    sx, sy, qx, qy = episode
    if sx.shape[0] != 1:
        raise ValueError(f"adapt_episode takes one episode (T = 1), got T = {sx.shape[0]}")
    device = next(iter(phi.values())).device
    sx, sy, qx, qy = sx.to(device), sy.to(device), qx.to(device), qy.to(device)
    start = stack(phi, 1)
    out = {"query_y": qy[0].cpu(), "before": {}, "after": {}, "accuracy_before": {}, "accuracy_after": {}}
    params, losses = adapt(model, phi, inner_state, sx, sy, eval_inner_iters=eval_inner_iters,
                           eval_batch_size=eval_batch_size, inner_lr=inner_lr, optimizer=optimizer, eval_seed=eval_seed)
    for when, p in (("before", start), ("after", params)):
        scores = logits(model, p, sx, qx)  # one set of forwards gives the predictions and the probabilities
        for mode in MODES:
            pred = scores[mode][0].argmax(dim=-1)
            out[when][mode] = pred.cpu()
            out[f"accuracy_{when}"][mode] = 100.0 * (pred == qy[0]).double().mean().item()
        out[f"probs_{when}"] = scores["non-transductive"][0].softmax(dim=-1).cpu()
    out["losses"] = losses.cpu()
    out["params"] = params
    return out


def explore(model, phi, inner_state, dataset, *, num_classes: int = 5, num_shots: int = 1,
            eval_inner_iters: int = 50, inner_lr: float = 1e-3, eval_batch_size: int = 5, num_tasks: int = 20,
            eval_seed: int = 0) -> dict:
    """What the test-time widget shows for one setting: accuracy over ``num_tasks`` fixed tasks (both modes,
    ``evaluate``) and one episode adapted with ``adapt_episode``. ``eval_inner_iters = 0`` is "no adaptation"
    (the accuracy of the meta-initialisation itself, which is chance for a random head)."""
    settings = dict(eval_inner_iters=eval_inner_iters, eval_batch_size=eval_batch_size, inner_lr=inner_lr,
                    eval_seed=eval_seed)
    accuracy = None
    if eval_inner_iters >= 1:
        acc = evaluate(model, phi, inner_state, dataset, num_classes=num_classes, num_shots=num_shots,
                       num_tasks=num_tasks, **settings)
        accuracy = {m: (acc[m]["accuracy"], acc[m]["ci95"]) for m in MODES}
    episode = sample_episode(dataset, num_classes, num_shots, eval_seed)
    result = adapt_episode(model, phi, inner_state, episode, **settings)
    return {"accuracy": accuracy, "episode": episode, "result": result, "tasks": num_tasks}


def accuracy_probe(model, dataset, **settings):
    """An ``eval_set`` for ``train.meta_train``: ``probe(phi, inner_state) -> {mode: accuracy %}`` on the same
    fixed tasks every time, so a live curve compares like with like. ``settings``: ``evaluate``'s keywords."""
    def probe(phi, inner_state):
        out = evaluate(model, phi, inner_state, dataset, **settings)
        return {m: out[m]["accuracy"] for m in MODES}

    return probe
