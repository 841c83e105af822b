"""How a meta-learned initialisation is judged.

Sine toy (the demo script's test): adapt a *copy* of the weights with full-batch SGD on 10 points of a
held-out task, then measure the mean squared error on the whole 50-point grid. Vectorised over tasks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import inner
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
