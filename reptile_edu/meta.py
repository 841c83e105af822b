"""One meta-step's direction for Reptile, FOMAML, second-order MAML and joint training.

Every algorithm returns a *displacement* d (unbatched, averaged over the meta-batch): the direction the
meta-parameters phi should move. The outer rule then applies it (see ``train.OuterRule``):
  * Reptile  d = mean_t(U_t^k(phi) - phi)                          (paper Algorithms 1 and 2)
  * FOMAML   d = mean_t(phi_t,k+1 - phi_t,k), the last inner step   (the official ``FOML`` class)
  * MAML     d = -alpha * mean_t dL_k(phi_t,k)/dphi, through the inner loop (second order, SGD inner only)
  * joint    Reptile with a single inner step: an SGD step on the mixture of tasks (paper section 3, k = 1)
Convention (paper section 5): a task brings k minibatches; MAML and FOMAML use the first k-1 for the inner
loop and differentiate the k-th.

Several independent runs (one per seed, ``train.SeedStates``) take one step together with ``runs=S``: ``phi`` is
then the S runs' parameters stacked ([S, ...]), the batches hold each run's tasks one run after another, and d
is each run's own mean ([S, ...]). Tasks share nothing, so each run's d is what it would be alone.
"""
from __future__ import annotations

import torch

from . import inner
from .config import PATHS
from .models import Params, broadcast, flatten, stack, unflatten


def _mean_delta(after: Params, before: Params, runs: int | None = None) -> Params:
    """mean_t(after - before) per run, computed on the flattened model (a few kernels, not a few per tensor)."""
    delta = (flatten(after, 1) - flatten(before, 1)).detach()
    delta = delta.mean(dim=0) if runs is None else delta.view(runs, -1, delta.shape[1]).mean(dim=1)
    return unflatten(delta, {k: v.shape[1:] for k, v in after.items()})


def reptile(model, phi: Params, batches, optimizer: str, lr: float, inner_state=None, runs=None):
    """Reptile: mean over tasks of (adapted - phi). Returns (d, inner_state, inner losses [k, T])."""
    n = batches[0][0].shape[0]
    start = stack(phi, n, runs)
    adapted, inner_state, losses = inner.run(model, start, batches, optimizer, lr, inner_state)
    return _mean_delta(adapted, start, runs), inner_state, losses


def fomaml(model, phi: Params, batches, optimizer: str, lr: float, inner_state=None, runs=None):
    """First-order MAML as the official code: k-1 steps, then keep only the displacement of the last step."""
    n = batches[0][0].shape[0]
    before_last, inner_state, losses = inner.run(model, stack(phi, n, runs), batches[:-1], optimizer, lr,
                                                 inner_state)
    after, inner_state, last = inner.run(model, before_last, batches[-1:], optimizer, lr, inner_state)
    return _mean_delta(after, before_last, runs), inner_state, torch.cat([losses, last])


def maml(model, phi: Params, batches, optimizer: str, lr: float, inner_state=None, runs=None):
    """Second-order MAML: differentiate the test loss L_k(phi_k) through the k-1 SGD inner steps."""
    if optimizer != "sgd":
        raise ValueError("second-order MAML is offered with the SGD inner loop only (inner_optimizer='sgd')")
    n = batches[0][0].shape[0]
    leaf = {k: p.detach().requires_grad_() for k, p in phi.items()}
    adapted, _, losses = inner.run(model, broadcast(leaf, n, runs), batches[:-1], "sgd", lr, create_graph=True)
    test = model.loss(adapted, *batches[-1])
    grads = torch.autograd.grad(test.sum() / (n // (runs or 1)), list(leaf.values()))  # each run's task mean
    d = {k: -lr * g for k, g in zip(leaf, grads)}
    return d, inner_state, torch.cat([losses, test.detach()[None]])


def joint(model, phi: Params, batches, optimizer: str, lr: float, inner_state=None, runs=None):
    """Joint training = Reptile with k = 1: one step on one minibatch of each task."""
    return reptile(model, phi, batches[:1], optimizer, lr, inner_state, runs)


DISPLACEMENTS = {"reptile": reptile, "fomaml": fomaml, "maml": maml, "joint": joint}


def per_run(d: Params, losses: torch.Tensor, runs: int | None = None):
    """A meta-step's outcome run by run, for the steps that log and guard it: the displacement flattened to
    [S, P], each run's logged loss (the mean over its tasks of the first inner batch's loss) and whether all
    its inner losses and its displacement are finite ([S] each; S = 1 for one run, ``runs`` None)."""
    width = runs or 1
    flat = flatten(d, 1) if runs else flatten(d)[None]
    finite = torch.isfinite(losses.view(losses.shape[0], width, -1).sum(dim=(0, 2)) + flat.sum(dim=1))
    return flat, losses[0].view(width, -1).mean(dim=1), finite


def meta_step(algorithm: str, model, phi: Params, batches, optimizer: str, lr: float,
              inner_state: dict | None = None, path: str = "vectorised", carry: bool = True, runs: int | None = None):
    """One meta-step's displacement on either execution path, with the inner Adam state carried or not.

    ``inner_state`` is the carried single-task inner state ({"v": [1, ...], "t": [1]}, or None = fresh; [S, ...]
    and [S] with ``runs=S``).
    * ``faithful``: the meta-batch's tasks one after another (T = 1 each), as the official ``train_step``: each
      task starts from phi, and with ``carry`` from the Adam state the previous task left (never reset). With
      ``runs``, run after run.
    * ``vectorised``: all tasks at once over stacked parameters (all runs' at once); with ``carry`` every task
      starts from its run's carried state and the state carried on is their *merged carry*
      (``inner.merge_states``), a named deviation forced by parallelism.
    ``carry=False`` starts every task from a fresh state (then both paths compute the same thing).
    Returns (d, inner_state, losses [k, T]); the returned inner state is None for SGD or without carry.
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)} (got {path!r})")
    step = DISPLACEMENTS[algorithm]
    keep = carry and optimizer == "adam"
    inner_state = inner_state if keep else None
    if path == "vectorised":
        n = batches[0][0].shape[0]
        d, end, losses = step(model, phi, batches, optimizer, lr, inner.expand_state(inner_state, n, runs), runs=runs)
        return d, inner.merge_states(inner_state, end, losses.shape[0], runs=runs) if keep else None, losses
    if runs is not None:  # each run's tasks in turn, on its own parameters and state
        m = batches[0][0].shape[0] // runs
        done = [meta_step(algorithm, model, {k: p[r] for k, p in phi.items()},
                          [(x[r * m:(r + 1) * m], y[r * m:(r + 1) * m]) for x, y in batches], optimizer, lr,
                          None if inner_state is None else inner.select_state(inner_state, r), path, carry)
                for r in range(runs)]
        d = {k: torch.stack([dr[k] for dr, _, _ in done]) for k in phi}
        state = inner.join_states([s for _, s, _ in done]) if keep else None
        return d, state, torch.cat([losses for _, _, losses in done], dim=1)
    ds, losses = [], []
    for j in range(batches[0][0].shape[0]):
        d, end, loss = step(model, phi, [(x[j:j + 1], y[j:j + 1]) for x, y in batches], optimizer, lr, inner_state)
        inner_state = end if keep else None
        ds.append(d)
        losses.append(loss)
    d = {k: torch.stack([dj[k] for dj in ds]).mean(dim=0) for k in phi}
    return d, inner_state, torch.cat(losses, dim=1)
