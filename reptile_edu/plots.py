"""Matplotlib figures that take data (and an axis) and draw; no training happens here.

Imported only by notebooks and the CLI, so ``import reptile_edu`` never pulls in matplotlib.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from . import evaluation

SINE_STEPS = (0, 8, 16, 24, 32)


def sine_adaptation(ax, tasks: evaluation.SineEvalSet, preds: dict, title: str = ""):
    """The demo script's picture for one task: the true curve (green), the support points (black x) and the
    prediction after each number of adaptation steps, from blue (0 steps) to red (most steps)."""
    x = tasks.x_grid[0, :, 0].numpy()
    ax.plot(x, tasks.y_grid[0, :, 0].numpy(), color="green", lw=2, label="true")
    ax.plot(tasks.x_support[0, :, 0].numpy(), tasks.y_support[0, :, 0].numpy(), "kx", ms=8, label="support")
    steps = sorted(preds)
    for j, step in enumerate(steps):
        frac = j / max(len(steps) - 1, 1)
        ax.plot(x, preds[step][0].numpy(), color=(frac, 0, 1 - frac), label=f"after {step}")
    ax.set_ylim(-4, 4)
    ax.set_xlabel("x")
    ax.set_title(title)
    return ax


def sine_comparison(model, initialisations: dict, task: evaluation.SineEvalSet, steps=SINE_STEPS,
                    lr: float = 0.02, figsize=None):
    """One panel per initialisation (e.g. random, Reptile, FOMAML, MAML): adaptation on the same task."""
    fig, axes = plt.subplots(1, len(initialisations), figsize=figsize or (4 * len(initialisations), 3.2),
                             sharey=True, squeeze=False)
    for ax, (name, phi) in zip(axes[0], initialisations.items()):
        _, preds = evaluation.sine_adapt(model, phi, task, max(steps), lr, record=steps)
        sine_adaptation(ax, task, preds, name)
    axes[0][0].set_ylabel("f(x)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def eval_curves(ax, histories: dict, key: str = "mse", ylabel: str = "MSE after adaptation"):
    """Periodic evaluations of several runs against meta-iteration (log y)."""
    for name, history in histories.items():
        ax.plot([e["iteration"] for e in history.evals], [e[key] for e in history.evals], marker="o", label=name)
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.legend()
    return ax
