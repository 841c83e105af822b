"""Reptile and first-order MAML in plain PyTorch: an ``nn.Module``, ``load_state_dict``, ``torch.optim``, a loop.

The package's engine (``meta.py``, ``inner.py``) runs the same algorithms as pure functions over stacked
parameters, which is fast but not how the paper writes them. This module is the version to read, and it is not
a sketch: ``tests/test_reference.py`` checks that, fed the same weights and the same tasks, it computes what
``meta_train(config.replace(path="faithful"))`` computes, to float64 rounding. Notation of docs/paper.md §1.1:
phi the meta-parameters, W_i = U^k_tau_i(phi) the weights after k inner steps on task tau_i, eps the meta-step.

Two networks live side by side: ``phi_net`` holds phi, and ``net`` is the working copy that the inner optimiser
steps. There is ONE inner optimiser for the whole run: ``net.load_state_dict`` puts phi back into the same
Parameter objects before each task, so the optimiser's Adam moments and step count are carried from task to
task and across meta-iterations, as in the official code (docs/paper.md §2.2). A new optimiser per task, as
many ports write it, resets them and trains a different model.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .config import Config
from .models import TF_BN_EPSILON, Params


class TFAdam(torch.optim.Optimizer):
    """TensorFlow's Adam with beta1 = 0, the official inner optimiser (docs/paper.md §2.2).

    Not ``torch.optim.Adam(betas=(0, 0.999))``: torch adds eps to sqrt(v / (1 - beta2^t)), TensorFlow adds it to
    sqrt(v) and folds the bias correction into the step size, so TensorFlow's effective eps is up to
    1 / sqrt(1 - beta2), about 32, times larger in the first steps. That moves the trajectory far beyond rounding
    (``tests/test_reference.py`` measures it), and the official trajectory is TensorFlow's.
    """

    def __init__(self, params, lr: float, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(params, dict(lr=lr, beta2=beta2, eps=eps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b2 = group["beta2"]
            for p in group["params"]:
                state = self.state[p]  # kept across tasks: the carried state
                if not state:
                    state["t"], state["v"] = 0, torch.zeros_like(p)
                state["t"] += 1
                v = state["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)  # v <- b2 v + (1 - b2) g^2
                lr_t = group["lr"] * math.sqrt(1 - b2 ** state["t"])  # lr_t = lr sqrt(1 - b2^t)
                p -= lr_t * p.grad / (v.sqrt() + group["eps"])  # W <- W - lr_t g / (sqrt(v) + eps)


# --- the algorithms: one meta-iteration each ----------------------------------------------------------------


def inner_step(net: nn.Module, inner_opt, loss_fn, x, y) -> None:
    """One step of the inner optimiser on one minibatch of one task."""
    inner_opt.zero_grad()
    loss_fn(net(x), y).backward()
    inner_opt.step()


def reptile_serial_step(phi_net, net, inner_opt, task, loss_fn, eps: float) -> None:
    """Reptile, paper Algorithm 1 (docs/paper.md §1.2): one task, phi <- phi + eps (W - phi)."""
    net.load_state_dict(phi_net.state_dict())  # W <- phi (the optimiser keeps its state)
    for x, y in task:  # W = U^k_tau(phi): k steps of SGD or Adam, one per minibatch
        inner_step(net, inner_opt, loss_fn, x, y)
    with torch.no_grad():
        for p, w in zip(phi_net.parameters(), net.parameters()):
            p += eps * (w - p)  # phi <- phi + eps (W - phi)


def reptile_step(phi_net, net, inner_opt, outer_opt, tasks, loss_fn, eps: float) -> None:
    """Reptile, paper Algorithm 2 (docs/paper.md §1.2): n tasks from the same phi, phi <- phi + eps mean_i (W_i - phi).

    With ``outer_opt = SGD`` this is exactly that interpolation; with Adam, the blog's variant (``outer_step``).
    """
    phi = [p.detach() for p in phi_net.parameters()]  # (unchanged until outer_step)
    displacements = []
    for task in tasks:  # tau_1 .. tau_n, one after another
        net.load_state_dict(phi_net.state_dict())  # every task starts at phi
        for x, y in task:  # W_i = U^k_tau_i(phi)
            inner_step(net, inner_opt, loss_fn, x, y)
        displacements.append([w.detach() - p for w, p in zip(net.parameters(), phi)])  # W_i - phi
    outer_step(phi_net, outer_opt, _mean(displacements), eps)


def fomaml_step(phi_net, net, inner_opt, outer_opt, tasks, loss_fn, eps: float) -> None:
    """First-order MAML as the official code runs it (docs/paper.md §1.4): k - 1 inner steps, then one more on the
    k-th minibatch, of which only the displacement g_i = W_k - W_{k-1} is kept; phi <- phi + eps mean_i g_i."""
    displacements = []
    for task in tasks:
        net.load_state_dict(phi_net.state_dict())  # every task starts at phi
        for x, y in task[:-1]:  # W_{k-1}: k - 1 inner steps on the first k - 1 minibatches
            inner_step(net, inner_opt, loss_fn, x, y)
        before = [w.detach().clone() for w in net.parameters()]  # a copy: the step below changes w in place
        inner_step(net, inner_opt, loss_fn, *task[-1])  # W_k: one step on the test minibatch
        displacements.append([w.detach() - b for w, b in zip(net.parameters(), before)])  # g_i = W_k - W_{k-1}
    outer_step(phi_net, outer_opt, _mean(displacements), eps)


def outer_step(phi_net, outer_opt, d, eps: float) -> None:
    """Move phi along the displacement d (docs/paper.md §3.1): feed -d to a torch optimiser as the gradient.

    ``SGD(lr=eps)`` gives phi - eps (-d) = phi + eps d, the official interpolation; ``Adam(lr=eps)`` the
    ``outer_optimizer="adam"`` rule. eps is the meta-step of this iteration, annealed linearly (§3.2).
    """
    for p, d_j in zip(phi_net.parameters(), d):
        p.grad = -d_j
    for group in outer_opt.param_groups:
        group["lr"] = eps
    outer_opt.step()


def _mean(displacements):
    """mean_i d_i, tensor by tensor."""
    return [torch.stack(ds).mean(dim=0) for ds in zip(*displacements)]


# --- networks, losses and optimisers of a Config; weights to and from the package's Params ----------------


def build_net(config: Config) -> nn.Module:
    """The network of ``config.dataset`` as ``nn.Module`` layers (docs/paper.md §2.1 and §2.3).

    Batch norm never keeps running statistics: it always normalises with the current batch, evaluation included,
    as the official code. Parameter order = the package's Params order (per layer: weight, then bias).
    """
    if config.dataset == "sine":
        return nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    omniglot = config.dataset == "omniglot"
    in_ch, channels, stride, features = (1, 64, 2, 256) if omniglot else (3, 32, 1, 1152)
    layers = []
    for _ in range(4):
        layers += [nn.Conv2d(in_ch, channels, 3, stride, padding=1),
                   nn.BatchNorm2d(channels, eps=TF_BN_EPSILON, track_running_stats=False)]
        if not omniglot:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))  # TF 'same' pooling: 84 -> 42 -> 21 -> 11 -> 6
        layers.append(nn.ReLU())
        in_ch = channels
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(features, config.num_classes))


def loss_fn(config: Config):
    """Mean squared error for the sine toy; cross-entropy SUMMED over the minibatch for images (§2.1)."""
    if config.dataset == "sine":
        return nn.functional.mse_loss
    return lambda logits, y: nn.functional.cross_entropy(logits, y, reduction="sum")


def inner_optimizer(config: Config, params):
    """Plain SGD, or TensorFlow's Adam with beta1 = 0 (``config.inner_optimizer``), at ``config.inner_lr``."""
    if config.inner_optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.inner_lr)
    return TFAdam(params, lr=config.inner_lr)


def outer_optimizer(config: Config, params):
    """SGD for the official interpolation, or Adam (``config.outer_optimizer``); ``outer_step`` sets the rate."""
    if config.outer_optimizer == "interpolate":
        return torch.optim.SGD(params, lr=config.meta_step_size)
    return torch.optim.Adam(params, lr=config.meta_step_size)


def _slots(net: nn.Module):
    """The net's tensors in Params order, each with whether it is a Linear weight (ours are [in, out])."""
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.BatchNorm2d)):
            yield m.weight, isinstance(m, nn.Linear)
            yield m.bias, False


@torch.no_grad()
def load_params(net: nn.Module, params: Params) -> nn.Module:
    """Copy the package's (unbatched) Params into ``net``: dense weights transposed, [1, out] biases flattened."""
    slots = list(_slots(net))
    if len(slots) != len(params):
        raise ValueError(f"{len(params)} parameter tensors for a network with {len(slots)}")
    for ours, (p, linear) in zip(params.values(), slots):
        p.copy_(ours.T if linear else ours.reshape(p.shape))
    return net


def to_params(net: nn.Module, like: Params) -> Params:
    """The weights of ``net`` as the package's Params, with the names and shapes of ``like``."""
    return {name: (p.T if linear else p.reshape(ref.shape)).detach().clone()
            for (name, ref), (p, linear) in zip(like.items(), _slots(net))}


def split_tasks(batches, dtype=torch.float64, device="cpu"):
    """The package's meta-batch (k minibatches (x, y) with a leading task dimension T) as T tasks of k (x, y).

    Inputs (and sine targets) take ``dtype``, as ``meta_train`` casts batches to its parameters' dtype."""
    cast = [(x.to(device, dtype), y.to(device, dtype) if y.is_floating_point() else y.to(device)) for x, y in batches]
    return [[(x[t], y[t]) for x, y in cast] for t in range(cast[0][0].shape[0])]


def package_stream(config: Config, generator: torch.Generator, dataset=None):
    """Meta-batches drawn as ``meta_train`` draws them (``train.sample_batches``), forever."""
    from .train import sample_batches

    while True:
        yield sample_batches(config, generator, dataset)


def train(config: Config, stream, params: Params, meta_iters: int | None = None, inner=None) -> Params:
    """Meta-train from ``params`` on meta-batches from ``stream`` for ``meta_iters`` (default ``config.meta_iters``)
    iterations, with the schedule of ``config``; returns the final phi as Params (``params``' dtype and device).

    ``inner(config, parameters)`` makes the inner optimiser (default ``inner_optimizer``); it is made once, so its
    state is carried through the run. Reptile with one task and the interpolation runs Algorithm 1 as written.
    """
    if config.algorithm not in ("reptile", "fomaml"):
        raise ValueError(f"the reference implements reptile and fomaml (got algorithm={config.algorithm!r})")
    if config.inner_state != "carry":
        raise ValueError("the reference carries the inner optimiser's state, as the official code "
                         "(inner_state='carry')")
    like = next(iter(params.values()))
    phi_net = load_params(build_net(config).to(like.device, like.dtype), params)
    net = copy.deepcopy(phi_net)  # the working copy; its Parameters are the ones the inner optimiser steps
    inner_opt = (inner or inner_optimizer)(config, net.parameters())
    outer_opt = outer_optimizer(config, phi_net.parameters())
    loss = loss_fn(config)
    serial = config.algorithm == "reptile" and config.meta_batch_size == 1 and config.outer_optimizer == "interpolate"
    stream = iter(stream)
    for i in range(config.meta_iters if meta_iters is None else meta_iters):
        tasks, eps = split_tasks(next(stream), like.dtype, like.device), config.meta_step_at(i)
        if serial:
            reptile_serial_step(phi_net, net, inner_opt, tasks[0], loss, eps)
        elif config.algorithm == "reptile":
            reptile_step(phi_net, net, inner_opt, outer_opt, tasks, loss, eps)
        else:
            fomaml_step(phi_net, net, inner_opt, outer_opt, tasks, loss, eps)
    return to_params(phi_net, params)
