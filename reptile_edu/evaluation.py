"""How a meta-learned initialisation is judged.

Sine toy (the demo script's test): adapt a *copy* of the weights with full-batch SGD on 10 points of a
held-out task, then measure the mean squared error on the whole 50-point grid. Vectorised over tasks.

Few-shot images (``evaluate``): the official protocol of supervised-reptile's ``evaluate``, both prediction
modes from one adaptation per task, vectorised over chunks of tasks.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from . import inner
from . import tasks as tasks_lib
from .data import sine
from .models import Params, stack


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


def sine_mse_after(model, phi: Params, tasks: SineEvalSet, steps: int = 32, lr: float = 0.02) -> torch.Tensor:
    """Per-task MSE on the 50-point grid after ``steps`` SGD steps on the support points, [T]."""
    adapted, _ = sine_adapt(model, phi, tasks, steps, lr)
    with torch.no_grad():
        return model.loss(adapted, tasks.x_grid, tasks.y_grid)


# --- Few-shot image classification (docs/paper.md §5) ---------------------------------------------------------

MODES = ("transductive", "non_transductive")
# Tasks adapted at once. On a GPU a chunk of 100 small tasks is launch-bound (each of the 50 steps is a few
# hundred tiny kernels), so more tasks share each launch. At 500 the largest chunk, Mini-ImageNet 5-shot, holds
# about 12 GiB per first-layer activation (26 images of 84x84x32 per task), well within a GPU of 40 GiB or more.
CHUNK = {"cpu": 100, "cuda": 500}


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
    non_transductive: N forwards, each of the whole support set plus one query; the prediction is the last row
    (statistics from the support set and that query; official ``_test_predictions``).
    """
    trans = model.forward(params, query_x)
    rows = [model.forward(params, torch.cat([support_x, query_x[:, j:j + 1]], dim=1))[:, -1]
            for j in range(query_x.shape[1])]
    return {"transductive": trans, "non_transductive": torch.stack(rows, dim=1)}


def predict(model, params: Params, support_x, query_x) -> dict[str, torch.Tensor]:
    """Predicted labels [T, N] of the queries in both modes (the argmax of ``logits``)."""
    return {mode: out.argmax(dim=-1) for mode, out in logits(model, params, support_x, query_x).items()}


def summarise(per_task: torch.Tensor) -> dict:
    """Mean and 95% CI in percent over per-task accuracies: 1.96 * sample std / sqrt(T) (our method)."""
    acc = per_task.double() * 100
    n = acc.numel()
    ci = 1.96 * acc.std().item() / math.sqrt(n) if n > 1 else 0.0
    return {"accuracy": acc.mean().item(), "ci95": ci, "tasks": n}


def evaluate(model, phi: Params, adam_state: dict | None, dataset, num_classes: int, num_shots: int,
             num_tasks: int, eval_batch_size: int, eval_inner_iters: int, inner_lr: float, eval_seed: int = 0,
             optimizer: str = "adam", replacement: bool = False, chunk_size: int | None = None) -> dict:
    """The official evaluation on ``num_tasks`` fixed-seed N-way K-shot tasks, ``chunk_size`` tasks at a time
    (default ``CHUNK`` for phi's device type).

    Each task: N*K support images and one query per class; ``eval_inner_iters`` steps of the inner optimiser on
    ``eval_batch_size`` minibatches of the support set (cycling sampler), starting from phi and from the CURRENT
    carried Adam state ``adam_state`` ([1, ...]; None = fresh), which is never modified (the official code
    restores the full state after each task); then both prediction modes from the same adapted weights.
    Returns ``{"transductive": {"accuracy", "ci95", "tasks"}, "non_transductive": {...}, "per_task": {mode:
    tensor [T]}, "eval_wall_s"}``; accuracies and CIs in percent.
    """
    device = next(iter(phi.values())).device
    chunk_size = CHUNK.get(device.type, CHUNK["cpu"]) if chunk_size is None else chunk_size
    for name, value in (("num_classes", num_classes), ("num_shots", num_shots), ("num_tasks", num_tasks),
                        ("eval_inner_iters", eval_inner_iters),
                        ("eval_batch_size", eval_batch_size), ("chunk_size", chunk_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1 (got {value})")
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(eval_seed)
    dtype = next(iter(phi.values())).dtype
    correct = {mode: [] for mode in MODES}
    for first in range(0, num_tasks, chunk_size):
        count = min(chunk_size, num_tasks - first)
        (sx, sy, qx, qy), batches = _sample_tasks(dataset, num_classes, num_shots, count, eval_batch_size,
                                                  eval_inner_iters, replacement, generator)
        batches = [(x.to(device, dtype), y.to(device)) for x, y in batches]
        params, _, _ = inner.run(model, stack(phi, count), batches, optimizer, inner_lr,
                                 inner.expand_state(adam_state, count) if optimizer == "adam" else None)
        preds = predict(model, params, sx.to(device, dtype), qx.to(device, dtype))
        for mode in MODES:
            correct[mode].append((preds[mode] == qy.to(device)).double().mean(dim=1).cpu())
    per_task = {mode: torch.cat(values) for mode, values in correct.items()}
    result = {mode: summarise(per_task[mode]) for mode in MODES}
    result.update(per_task=per_task, eval_wall_s=time.perf_counter() - start)
    return result
