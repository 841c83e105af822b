"""The inner loop: k optimiser steps on a task's minibatches, as pure functions of parameters and batches.

``params`` is a dict of [T, ...] tensors that require grad; every batch is (x, y) with leading T. Both
optimisers return new tensors and never touch their inputs, so "before" and "after" can never alias
(a bug of ports that back up weights with a bare ``state_dict()``).
"""
from __future__ import annotations

import torch

from .models import Params

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


def sgd_step(model, params: Params, batch, lr: float, create_graph: bool = False) -> tuple[Params, torch.Tensor]:
    """One plain gradient step per task. ``create_graph`` keeps the graph for second-order MAML."""
    losses, grads = gradients(model, params, *batch, create_graph)
    if create_graph:
        new = {k: p - lr * g for (k, p), g in zip(params.items(), grads)}
    else:
        with torch.no_grad():
            values = torch._foreach_add(list(params.values()), grads, alpha=-lr)
        new = {k: v.requires_grad_() for k, v in zip(params, values)}
    return new, losses.detach()


def adam_state(params: Params) -> dict:
    """Fresh Adam(beta1=0) state: second moments like ``params`` and a step counter per task."""
    first = next(iter(params.values()))
    return {"v": {k: torch.zeros_like(p, requires_grad=False) for k, p in params.items()},
            "t": torch.zeros(first.shape[0], dtype=torch.float64, device=first.device)}


def adam_step(model, params: Params, state: dict, batch, lr: float) -> tuple[Params, dict, torch.Tensor]:
    """One step of TensorFlow's Adam with beta1 = 0 (the official inner optimiser), per task.

    TF form: lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t) with beta1 = 0, and eps added to sqrt(v)
    (PyTorch adds it to the bias-corrected root; with eps = 1e-8 the difference is negligible).
    """
    losses, grads = gradients(model, params, *batch)
    t = state["t"] + 1
    scale = (lr * torch.sqrt(1 - ADAM_BETA2 ** t)).to(grads[0].dtype)
    new, v_new = {}, {}
    with torch.no_grad():
        for (k, p), g in zip(params.items(), grads):
            v = state["v"][k] * ADAM_BETA2 + (1 - ADAM_BETA2) * g * g
            step = scale.reshape((-1,) + (1,) * (p.dim() - 1)) * g / (v.sqrt() + ADAM_EPS)
            new[k] = (p - step).requires_grad_()
            v_new[k] = v
    return new, {"v": v_new, "t": t}, losses.detach()


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
