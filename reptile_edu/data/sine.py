"""The sine-wave task distribution of the paper (section 4) and the demo script.

A task is f(x) = a*sin(x + b) with a ~ U[0.1, 5] and b ~ U[0, 2*pi] (the Reptile convention; MAML's
sine uses b ~ U[0, pi] and another network, which we never mix in). Points live on the 50-point grid
``linspace(-5, 5, 50)``; one inner epoch is a random permutation of the grid cut into minibatches.
Everything is batched over tasks: leading dimension T.
"""
from __future__ import annotations

import math

import torch

X_GRID = torch.linspace(-5.0, 5.0, 50)
AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, 2 * math.pi)


def sample_tasks(n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitudes and phases of ``n`` tasks, shape [n] each."""
    u = torch.rand(2, n, generator=generator, dtype=torch.float64)
    amplitude = AMPLITUDE_RANGE[0] + (AMPLITUDE_RANGE[1] - AMPLITUDE_RANGE[0]) * u[0]
    phase = PHASE_RANGE[0] + (PHASE_RANGE[1] - PHASE_RANGE[0]) * u[1]
    return amplitude.float(), phase.float()


def sine(amplitude: torch.Tensor, phase: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """f_tau(x) for each task: amplitude, phase [T]; x [T, ...] or a shared [P] grid -> [T, ...]."""
    shape = (-1,) + (1,) * max(x.dim() - 1, 1)
    return amplitude.reshape(shape) * torch.sin(x + phase.reshape(shape))


def epoch_batches(amplitude, phase, batch_size: int, num_batches: int,
                  generator: torch.Generator | None = None, x_grid: torch.Tensor = X_GRID):
    """The demo script's inner data: shuffle the grid per task, cut it into minibatches (cycling over
    epochs if more are asked for than one epoch holds). Returns a list of (x, y), each [T, batch, 1]."""
    if batch_size < 1 or num_batches < 1:
        raise ValueError(f"batch_size and num_batches must be >= 1 (got {batch_size}, {num_batches})")
    n_tasks, n_points = amplitude.shape[0], x_grid.shape[0]
    epochs = -(-batch_size * num_batches // n_points)
    order = torch.cat([torch.rand(n_tasks, n_points, generator=generator).argsort(dim=1)
                       for _ in range(epochs)], dim=1)[:, : batch_size * num_batches]
    x = x_grid[order]
    y = sine(amplitude, phase, x)
    return [(x[:, i * batch_size:(i + 1) * batch_size, None], y[:, i * batch_size:(i + 1) * batch_size, None])
            for i in range(num_batches)]


def support_points(amplitude, phase, num_points: int, generator: torch.Generator | None = None,
                   x_grid: torch.Tensor = X_GRID):
    """``num_points`` distinct grid points per task for few-shot adaptation (the demo's 10 points): [T, p, 1]."""
    if not 1 <= num_points <= x_grid.shape[0]:
        raise ValueError(f"num_points must be in 1..{x_grid.shape[0]} (got {num_points})")
    idx = torch.rand(amplitude.shape[0], x_grid.shape[0], generator=generator).argsort(dim=1)[:, :num_points]
    x = x_grid[idx]
    return x[..., None], sine(amplitude, phase, x)[..., None]


def grid_targets(amplitude, phase, x_grid: torch.Tensor = X_GRID):
    """The whole curve each task is judged on: x [T, 50, 1], y [T, 50, 1]."""
    x = x_grid.expand(amplitude.shape[0], -1)
    return x[..., None], sine(amplitude, phase, x)[..., None]
