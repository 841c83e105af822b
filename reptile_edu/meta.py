"""One meta-step's direction for Reptile, FOMAML, second-order MAML and joint training.

Every algorithm returns a *displacement* d (unbatched, averaged over the meta-batch): the direction the
meta-parameters phi should move. The outer rule then applies it (see ``train.OuterRule``):
  * Reptile  d = mean_t(U_t^k(phi) - phi)                          (paper Algorithms 1 and 2)
  * FOMAML   d = mean_t(phi_t,k+1 - phi_t,k), the last inner step   (the official ``FOML`` class)
  * MAML     d = -alpha * mean_t dL_k(phi_t,k)/dphi, through the inner loop (second order, SGD inner only)
  * joint    Reptile with a single inner step: an SGD step on the mixture of tasks (paper section 3, k = 1)
Convention (paper section 5): a task brings k minibatches; MAML and FOMAML use the first k-1 for the inner
loop and differentiate the k-th.
"""
from __future__ import annotations

import torch

from . import inner
from .config import PATHS
from .models import Params, broadcast, flatten, stack, unflatten


def _mean_delta(after: Params, before: Params) -> Params:
    """mean_t(after - before), computed on the flattened model (a few kernels, not a few per tensor)."""
    delta = (flatten(after, 1) - flatten(before, 1)).detach().mean(dim=0)
    return unflatten(delta, {k: v.shape[1:] for k, v in after.items()})


def reptile(model, phi: Params, batches, optimizer: str, lr: float, inner_state=None):
    """Reptile: mean over tasks of (adapted - phi). Returns (d, inner_state, inner losses [k, T])."""
    n = batches[0][0].shape[0]
    start = stack(phi, n)
    adapted, inner_state, losses = inner.run(model, start, batches, optimizer, lr, inner_state)
    return _mean_delta(adapted, start), inner_state, losses


def fomaml(model, phi: Params, batches, optimizer: str, lr: float, inner_state=None):
    """First-order MAML as the official code: k-1 steps, then keep only the displacement of the last step."""
    n = batches[0][0].shape[0]
    before_last, inner_state, losses = inner.run(model, stack(phi, n), batches[:-1], optimizer, lr, inner_state)
    after, inner_state, last = inner.run(model, before_last, batches[-1:], optimizer, lr, inner_state)
    return _mean_delta(after, before_last), inner_state, torch.cat([losses, last])


def maml(model, phi: Params, batches, optimizer: str, lr: float, inner_state=None):
    """Second-order MAML: differentiate the test loss L_k(phi_k) through the k-1 SGD inner steps."""
    if optimizer != "sgd":
        raise ValueError("second-order MAML is offered with the SGD inner loop only (inner_optimizer='sgd')")
    n = batches[0][0].shape[0]
    leaf = {k: p.detach().requires_grad_() for k, p in phi.items()}
    adapted, _, losses = inner.run(model, broadcast(leaf, n), batches[:-1], "sgd", lr, create_graph=True)
    test = model.loss(adapted, *batches[-1])
    grads = torch.autograd.grad(test.sum() / n, list(leaf.values()))
    d = {k: -lr * g for k, g in zip(leaf, grads)}
    return d, inner_state, torch.cat([losses, test.detach()[None]])


def joint(model, phi: Params, batches, optimizer: str, lr: float, inner_state=None):
    """Joint training = Reptile with k = 1: one step on one minibatch of each task."""
    return reptile(model, phi, batches[:1], optimizer, lr, inner_state)


DISPLACEMENTS = {"reptile": reptile, "fomaml": fomaml, "maml": maml, "joint": joint}


def meta_step(algorithm: str, model, phi: Params, batches, optimizer: str, lr: float,
              inner_state: dict | None = None, path: str = "vectorised", carry: bool = True):
    """One meta-step's displacement on either execution path, with the inner Adam state carried or not.

    ``inner_state`` is the carried single-task inner state ({"v": [1, ...], "t": [1]}, or None = fresh).
    * ``faithful``: the meta-batch's tasks one after another (T = 1 each), as the official ``train_step``: each
      task starts from phi, and with ``carry`` from the Adam state the previous task left (never reset).
    * ``vectorised``: all tasks at once over stacked parameters; with ``carry`` every task starts from the
      carried state and the state carried on is their *merged carry* (``inner.merge_states``), a named
      deviation forced by parallelism.
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
        d, end, losses = step(model, phi, batches, optimizer, lr, inner.expand_state(inner_state, n))
        return d, inner.merge_states(inner_state, end, losses.shape[0]) if keep else None, losses
    ds, losses = [], []
    for j in range(batches[0][0].shape[0]):
        d, end, loss = step(model, phi, [(x[j:j + 1], y[j:j + 1]) for x, y in batches], optimizer, lr, inner_state)
        inner_state = end if keep else None
        ds.append(d)
        losses.append(loss)
    d = {k: torch.stack([dj[k] for dj in ds]).mean(dim=0) for k in phi}
    return d, inner_state, torch.cat(losses, dim=1)
