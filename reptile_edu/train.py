"""The meta-training loop: sample a meta-batch, get the algorithm's displacement, apply the outer rule.

``meta_train(config, callback)`` reports through the callback only, so notebooks draw plots, progress
bars or widgets while this module knows nothing of them; tests call it with no UI at all.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from . import evaluation, meta
from .config import Config
from .data import sine
from .models import Params, SineMLP
from .utils import set_seed


@dataclass
class History:
    """What a run leaves behind: per-iteration inner losses, periodic evaluations, the final weights."""
    config: dict
    losses: list[float] = field(default_factory=list)  # mean over tasks of the first inner batch's loss
    evals: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    params: Params | None = None

    def to_dict(self) -> dict:
        return {"config": self.config, "losses": self.losses, "evals": self.evals, "wall_s": self.wall_s}


class OuterRule:
    """``interpolate``: phi += eps * d (official). ``adam``: Adam on the gradient -d with learning rate eps."""

    def __init__(self, config: Config, phi: Params):
        self.kind = config.outer_optimizer
        self.optimizer = torch.optim.Adam(list(phi.values()), lr=config.meta_step_size) if self.kind == "adam" else None

    @torch.no_grad()
    def apply(self, phi: Params, d: Params, eps: float) -> None:
        if self.optimizer is None:
            torch._foreach_add_(list(phi.values()), list(d.values()), alpha=eps)
            return
        for k, p in phi.items():
            p.grad = -d[k]
        for group in self.optimizer.param_groups:
            group["lr"] = eps
        self.optimizer.step()


def build_model(config: Config):
    if config.dataset == "sine":
        return SineMLP()
    raise ValueError(f"unknown dataset {config.dataset!r}: this trainer knows 'sine'")


def sample_batches(config: Config, generator: torch.Generator):
    """One meta-batch of tasks, as the list of k inner minibatches (x, y) with leading dimension T."""
    if config.dataset == "sine":
        amplitude, phase = sine.sample_tasks(config.meta_batch_size, generator)
        return sine.epoch_batches(amplitude, phase, config.inner_batch_size, config.inner_iters, generator)
    raise ValueError(f"unknown dataset {config.dataset!r}: this trainer knows 'sine'")


def meta_train(config: Config, callback=None, params: Params | None = None,
               eval_set: evaluation.SineEvalSet | None = None) -> History:
    """Meta-train from ``params`` (default: a fresh seeded initialisation) and return the History.

    ``callback(event)`` receives dicts: ``{"event": "step", "iteration", "meta_iters", "meta_step", "loss"}``
    after every meta-iteration and ``{"event": "eval", "iteration", "mse", "params"}`` every
    ``config.eval_interval`` iterations and at the end (when ``eval_set`` is given).
    """
    config.validate()
    generator = set_seed(config.seed)
    model = build_model(config)
    phi = {k: v.detach().clone() for k, v in (params or model.init_params(generator)).items()}
    outer = OuterRule(config, phi)
    step = meta.DISPLACEMENTS[config.algorithm]
    history = History(config=config.to_dict())
    start = time.perf_counter()

    def evaluate(iteration):
        if eval_set is None:
            return
        mse = evaluation.sine_mse_after(model, phi, eval_set, config.eval_inner_iters, config.inner_lr).mean().item()
        history.evals.append({"iteration": iteration, "mse": mse, "wall_s": time.perf_counter() - start})
        if callback:
            callback({"event": "eval", "iteration": iteration, "mse": mse, "params": phi})

    for i in range(config.meta_iters):
        if i % config.eval_interval == 0:
            evaluate(i)
        eps = config.meta_step_at(i)
        batches = sample_batches(config, generator)
        d, _, losses = step(model, phi, batches, config.inner_optimizer, config.inner_lr)
        loss = losses[0].mean().item()
        if not math.isfinite(loss):
            raise FloatingPointError(f"training diverged at meta-iteration {i} (inner loss {loss}): "
                                     f"lower inner_lr ({config.inner_lr}) or meta_step_size ({config.meta_step_size})")
        outer.apply(phi, d, eps)
        history.losses.append(loss)
        if callback:
            callback({"event": "step", "iteration": i + 1, "meta_iters": config.meta_iters,
                      "meta_step": eps, "loss": loss})
    evaluate(config.meta_iters)
    history.wall_s = time.perf_counter() - start
    history.params = phi
    return history
