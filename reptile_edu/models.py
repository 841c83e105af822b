"""Networks written as pure functions of a parameter dict whose tensors carry a leading task dimension T.

Why this shape: the gradient of sum_t L_t(params_t) with respect to the stacked parameters is, row by
row, each task's own gradient (the tasks share nothing). So one autograd call adapts T tasks at once,
with no deep copies, no per-task optimiser objects and no vmap; T = 1 is the serial algorithm.

A model has ``init_params(generator)``, ``forward(params, x)`` and ``loss(params, x, y) -> [T]``. It may
also offer ``loss_and_grads(params, x, y)``: a hand-written backward pass that the first-order inner loop
uses instead of autograd (tests check it against autograd). The sine MLP has one because at 4k
parameters and 10 points autograd's bookkeeping costs three times the arithmetic.
"""
from __future__ import annotations

import math

import torch

Params = dict[str, torch.Tensor]


def stack(params: Params, n: int) -> Params:
    """``n`` identical copies of unbatched parameters, [n, ...], as fresh leaves that require grad."""
    return {k: p.detach().unsqueeze(0).expand(n, *p.shape).clone().requires_grad_() for k, p in params.items()}


def broadcast(params: Params, n: int) -> Params:
    """``n`` views of the same parameters, keeping the autograd link to them (for second-order MAML)."""
    return {k: p.unsqueeze(0).expand(n, *p.shape) for k, p in params.items()}


def num_parameters(params: Params) -> int:
    return sum(p.numel() for p in params.values())


def _linear_init(in_features: int, out_features: int, generator: torch.Generator | None):
    # PyTorch's nn.Linear default (as in the demo script): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both.
    # Stored as w [in, out] and b [1, out] so that the batched forward is one baddbmm, no transposes.
    bound = 1.0 / math.sqrt(in_features)
    w = (torch.rand(in_features, out_features, generator=generator) * 2 - 1) * bound
    b = (torch.rand(1, out_features, generator=generator) * 2 - 1) * bound
    return w, b


class SineMLP:
    """The demo script's 1-64-64-1 MLP with tanh (4,353 parameters); mean-squared-error loss.

    The paper's text says ReLU; the demo script uses tanh ("slightly better results") and is our reference.
    """

    def __init__(self, hidden: int = 64):
        self.sizes = [1, hidden, hidden, 1]

    def init_params(self, generator: torch.Generator | None = None) -> Params:
        params = {}
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            params[f"w{i}"], params[f"b{i}"] = _linear_init(fan_in, fan_out, generator)
        return params

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """x [T, B, 1] -> predictions [T, B, 1], each task with its own parameters."""
        h = x
        last = len(self.sizes) - 2
        for i in range(last + 1):
            h = torch.baddbmm(params[f"b{i}"], h, params[f"w{i}"])
            if i < last:
                h = torch.tanh(h)
        return h

    def loss(self, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-task mean squared error over the minibatch, [T] (the demo script averages)."""
        return (self.forward(params, x) - y).square().mean(dim=(1, 2))

    @torch.no_grad()
    def loss_and_grads(self, params: Params, x: torch.Tensor, y: torch.Tensor):
        """``loss`` and its gradients in the order of ``params``, by backpropagation written out."""
        last = len(self.sizes) - 2
        acts = [x]
        for i in range(last + 1):
            h = torch.baddbmm(params[f"b{i}"], acts[-1], params[f"w{i}"])
            acts.append(torch.tanh(h) if i < last else h)
        residual = acts[-1] - y
        losses = residual.square().mean(dim=(1, 2))
        delta = residual * (2.0 / residual[0].numel())
        grads = {}
        for i in range(last, -1, -1):
            grads[f"w{i}"] = torch.bmm(acts[i].transpose(1, 2), delta)
            grads[f"b{i}"] = delta.sum(dim=1, keepdim=True)
            if i > 0:  # tanh' = 1 - tanh^2
                delta = torch.bmm(delta, params[f"w{i}"].transpose(1, 2)) * (1 - acts[i] * acts[i])
        return losses, [grads[k] for k in params]
