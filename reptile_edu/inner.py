"""The inner loop: k optimiser steps on a task's minibatches, as pure functions of parameters and batches.

``params`` is a dict of [T, ...] tensors that require grad; every batch is (x, y) with leading T. Both
optimisers return new tensors and never touch their inputs, so "before" and "after" can never alias
(a bug of ports that back up weights with a bare ``state_dict()``).
"""
from __future__ import annotations

import torch

from .models import Params, flatten, unflatten

ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8


def gradients(model, params: Params, x, y, create_graph: bool = False):
    """Per-task losses [T] and the gradients of their sum (= each task's own gradient), in ``params`` order.

    Uses the model's hand-written backward when it has one and no graph is needed, else autograd.
    """
    if not create_graph and hasattr(model, "loss_and_grads"):
        return model.loss_and_grads(params, x, y)
    losses = model.loss(params, x, y)
    grads = torch.autograd.grad(losses.sum(), list(params.values()), create_graph=create_graph)
    return losses, grads


def whole_model(params: Params) -> bool:
    """Whether an update runs on the whole model as one vector: on a GPU, where a small network's step is
    launch-bound and one kernel per operation for all parameters beats one per tensor; on a CPU it runs tensor by
    tensor, which copies nothing (fresh whole-model buffers cost more there than the arithmetic)."""
    return next(iter(params.values())).is_cuda


def _over_model(update, params: Params, *others) -> tuple[Params, ...]:
    """``update`` (elementwise: one tensor of each argument in, a tuple of tensors out) over every parameter
    tensor, in the layout ``whole_model`` chooses; each output is a Params dict. ``others``: lists in
    ``params`` order (gradients, second moments)."""
    columns = [list(params.values()), *(list(o) for o in others)]
    if whole_model(params):
        outputs = update(*(torch.cat([t.reshape(-1) for t in column]) for column in columns))
        shapes = {k: p.shape for k, p in params.items()}
        return tuple(unflatten(out, shapes) for out in outputs)
    rows = [update(*row) for row in zip(*columns)]
    return tuple(dict(zip(params, out)) for out in zip(*rows))


def sgd_step(model, params: Params, batch, lr: float, create_graph: bool = False) -> tuple[Params, torch.Tensor]:
    """One plain gradient step per task, theta <- theta - lr * grad. ``create_graph`` keeps the graph for
    second-order MAML."""
    losses, grads = gradients(model, params, *batch, create_graph)
    if create_graph:
        return {k: p - lr * g for (k, p), g in zip(params.items(), grads)}, losses.detach()
    with torch.no_grad():
        new, = _over_model(lambda p, g: (torch.add(p, g, alpha=-lr),), params, grads)
    return {k: p.requires_grad_() for k, p in new.items()}, losses.detach()


def adam_state(params: Params) -> dict:
    """Fresh Adam(beta1=0) state: second moments like ``params`` and a step counter per task."""
    first = next(iter(params.values()))
    return {"v": {k: torch.zeros_like(p, requires_grad=False) for k, p in params.items()},
            "t": torch.zeros(first.shape[0], dtype=torch.float64, device=first.device)}


def adam_step(model, params: Params, state: dict, batch, lr: float) -> tuple[Params, dict, torch.Tensor]:
    """One step of TensorFlow's Adam with beta1 = 0 (the official inner optimiser), per task.

    TF form: lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t) with beta1 = 0, and eps added to sqrt(v)
    (``torch.optim.Adam`` adds it to the bias-corrected root, a different trajectory: docs/paper.md §2.2).
    All tasks of a call share one step count (they start from one state: ``adam_state`` or ``expand_state``),
    so lr_t is one scalar *tensor*: the update has no device sync, which is what lets a whole meta-iteration be
    captured as a CUDA graph (``fast/graphs.py``).
    """
    losses, grads = gradients(model, params, *batch)
    t = state["t"] + 1
    lr_t = (-lr * torch.sqrt(1 - ADAM_BETA2 ** t[0])).to(grads[0].dtype)  # lr_t = lr sqrt(1 - beta2^t)

    def update(p, g, v):
        v = v * ADAM_BETA2
        v.addcmul_(g, g, value=1 - ADAM_BETA2)  # v <- beta2 v + (1 - beta2) g^2
        step = g / v.sqrt().add_(ADAM_EPS)
        return p + step.mul_(lr_t), v  # theta <- theta - lr_t g / (sqrt(v) + eps)

    with torch.no_grad():
        new, v = _over_model(update, params, grads, [state["v"][k] for k in params])
    return {k: p.requires_grad_() for k, p in new.items()}, {"v": v, "t": t}, losses.detach()


def expand_state(state: dict | None, n: int, runs: int | None = None) -> dict | None:
    """The carried single-task Adam state ([1, ...]) as the starting state of ``n`` parallel tasks (views); with
    ``runs=S``, S runs' states ([S, ...]) for their n/S tasks each, run by run (copies)."""
    if state is None:
        return None
    if runs is not None:
        return {"v": {k: v.repeat_interleave(n // runs, dim=0) for k, v in state["v"].items()},
                "t": state["t"].repeat_interleave(n // runs)}
    return {"v": {k: v.expand(n, *v.shape[1:]) for k, v in state["v"].items()}, "t": state["t"].expand(n)}


def select_state(state: dict, run: int) -> dict:
    """Run ``run``'s carried state ([1, ...]) out of several runs' ([S, ...])."""
    return {"v": {k: v[run:run + 1] for k, v in state["v"].items()}, "t": state["t"][run:run + 1]}


def state_to(state: dict | None, device) -> dict | None:
    """A carried Adam state (or None) on ``device``."""
    if state is None:
        return None
    return {"v": {k: v.to(device) for k, v in state["v"].items()}, "t": state["t"].to(device)}


def join_states(states: list[dict]) -> dict:
    """Several runs' carried states ([1, ...] each) as one ([S, ...]): ``select_state``'s inverse."""
    return {"v": {k: torch.cat([s["v"][k] for s in states]) for k in states[0]["v"]},
            "t": torch.cat([s["t"] for s in states])}


def merge_states(start: dict | None, end: dict, steps: int, first: int = 0, total: int | None = None,
                 runs: int | None = None) -> dict:
    """The *merged carry*: the vectorised path's rule for the Adam state carried past a meta-batch.

    The official code runs the tasks one after another, each starting from the state the previous one left.
    Run in parallel, every task starts from the same carried state ``start`` ([1, ...], None = fresh) and ends
    in its own ``end`` ([T, ...], k = ``steps`` steps later: passed in rather than read off ``t``, which would
    cost a device sync). The merged state is what the serial exponential average would hold after seeing all
    these squared gradients in task order:
    ``v = b^(T k) v0 + sum_j b^((T-1-j) k) (v_j - b^k v0)``, ``t = t0 + T k``, with b = beta2. The step count
    and the weighting are then exactly the faithful path's; only the gradients differ, because task j was
    adapted from ``start`` rather than from task j-1's state.

    With ``runs=S``, ``start`` is S runs' states ([S, ...]), ``end`` their T/S tasks each, run by run, and the
    merge is each run's own ([S, ...]).

    Sharded over processes (``fast/distributed.py``), ``end`` holds tasks ``first .. first+T-1`` of ``total``: the
    result is this shard's part of the sum (the ``start`` term belongs to the shard with ``first == 0``), and
    the parts add up, by an all-reduce, to the unsharded merge.
    """
    R = runs or 1
    T = end["t"].shape[0] // R
    total = T if total is None else total
    t0 = start["t"] if start is not None else torch.zeros(R, dtype=end["t"].dtype, device=end["t"].device)
    k = steps
    decay = ADAM_BETA2 ** (k * (total - 1 - torch.arange(first, first + T, dtype=torch.float64, device=t0.device)))
    v = flatten(end["v"], 1).view(R, T, -1)  # [R, T, P]: the whole model in a few kernels
    v0 = None if start is None else flatten(start["v"], 1)[:, None]  # [R, 1, P]
    contrib = v if v0 is None else v - ADAM_BETA2 ** k * v0
    merged = (decay.to(v.dtype)[:, None] * contrib).sum(dim=1)
    if v0 is not None and not first:
        merged = merged + ADAM_BETA2 ** (total * k) * v0[:, 0]
    return {"v": unflatten(merged, {name: x.shape[1:] for name, x in end["v"].items()}), "t": t0 + total * k}


def run(model, params: Params, batches, optimizer: str, lr: float, state: dict | None = None,
        create_graph: bool = False):
    """k inner steps, one per batch. Returns (params, state, losses [k, T]); state is None for SGD."""
    losses = []
    for batch in batches:
        if optimizer == "sgd":
            params, loss = sgd_step(model, params, batch, lr, create_graph)
        elif optimizer == "adam":
            if create_graph:
                raise ValueError("second-order MAML is offered with the SGD inner loop only (inner_optimizer='sgd')")
            state = adam_state(params) if state is None else state
            params, state, loss = adam_step(model, params, state, batch, lr)
        else:
            raise ValueError(f"inner optimizer must be 'sgd' or 'adam' (got {optimizer!r})")
        losses.append(loss)
    return params, state, torch.stack(losses)
