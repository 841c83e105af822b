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


def broadcast(params: Params, n: int, runs: int | None = None) -> Params:
    """``n`` task copies of the parameters, [n, ...], keeping the autograd link to them (for second-order MAML).

    ``runs=None``: ``params`` are one run's (unbatched), and every task gets them (views). ``runs=S``: ``params``
    are S runs' stacked ([S, ...]) and the n tasks are n/S per run, run by run (copies)."""
    if runs is None:
        return {k: p.unsqueeze(0).expand(n, *p.shape) for k, p in params.items()}
    return {k: p.repeat_interleave(n // runs, dim=0) for k, p in params.items()}


def stack(params: Params, n: int, runs: int | None = None) -> Params:
    """``broadcast``'s task copies as fresh leaves that require grad (the start of a first-order inner loop)."""
    return {k: p.detach().clone().requires_grad_() for k, p in broadcast(params, n, runs).items()}


def flatten(params: Params, lead: int = 0) -> torch.Tensor:
    """All tensors of ``params`` as one ``[*lead dims, P]`` tensor (one copy): whole-model arithmetic in a few
    kernels instead of a few per parameter tensor, which is what a small network's step is made of on a GPU."""
    return torch.cat([p.reshape(*p.shape[:lead], -1) for p in params.values()], dim=lead)


def unflatten(flat: torch.Tensor, shapes: dict[str, torch.Size]) -> Params:
    """Views of ``flat`` ``[P]`` or ``[1, P]`` as tensors of the given (trailing) shapes, in order: ``flatten``'s
    inverse."""
    out, offset = {}, 0
    for name, shape in shapes.items():
        n = math.prod(shape)
        out[name] = flat[..., offset:offset + n].view(*flat.shape[:-1], *shape)
        offset += n
    return out


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


# --- Image classifiers (docs/paper.md §2.1) -----------------------------------------------------------------

TF_BN_EPSILON = 1e-3  # tf.layers.batch_normalization's default (PyTorch's is 1e-5)


def _glorot_conv(in_ch: int, out_ch: int, generator):
    # TF's glorot_uniform for a 3x3 kernel: fan_in = 9*in, fan_out = 9*out, limit = sqrt(6 / (fan_in + fan_out)).
    limit = math.sqrt(6.0 / (9 * in_ch + 9 * out_ch))
    return (torch.rand(out_ch, in_ch, 3, 3, generator=generator) * 2 - 1) * limit


def _glorot_dense(in_features: int, out_features: int, generator):
    limit = math.sqrt(6.0 / (in_features + out_features))
    return (torch.rand(in_features, out_features, generator=generator) * 2 - 1) * limit


class _ConvNet:
    """Four conv blocks and a dense head, run for T tasks at once by folding T into the channels.

    Input x [T, B, C, H, W] becomes [B, T*C, H, W] (channels-last); a convolution with ``groups=T`` applies each
    task's own kernel to its own channels, and ``F.batch_norm(training=True)`` on T*C channels takes statistics per
    task and per channel over (B, H, W) - exactly each task's batch statistics. Batch norm never has running
    statistics (the official code always runs it with ``training=True``, evaluation included).

    Why not ``torch.func.vmap(grad(loss))``: it lowers batched-weight convolutions to the same grouped
    convolution, plus tracing overhead. ``benchmarks/conv_paths.py`` times the other candidates layer by layer
    (NCHW, batch norm on a matrix view, unfold + one batched matrix product, a loop over tasks, ``torch.compile``)
    against one weight shared by all images; on a CPU none beats this fold, which runs within a few tens of
    percent of the shared-weight speed, so we keep it.

    Initialisation is TF's default (supervised-reptile issue #7): Glorot-uniform kernels, zero biases, BN gamma 1,
    beta 0. Conv biases are kept (they make the official networks' parameter counts) although batch norm cancels them.
    The loss is the per-task SUM of cross-entropies over the batch, as TF differentiates the per-example vector.
    """

    in_channels = 1
    channels = 64
    stride = 2
    pool = False
    features = 256

    def __init__(self, num_classes: int = 5):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (got {num_classes})")
        self.num_classes = num_classes

    def init_params(self, generator: torch.Generator | None = None) -> Params:
        params, in_ch = {}, self.in_channels
        for i in range(4):
            params[f"conv{i}.w"] = _glorot_conv(in_ch, self.channels, generator)
            params[f"conv{i}.b"] = torch.zeros(self.channels)
            params[f"bn{i}.gamma"] = torch.ones(self.channels)
            params[f"bn{i}.beta"] = torch.zeros(self.channels)
            in_ch = self.channels
        params["dense.w"] = _glorot_dense(self.features, self.num_classes, generator)
        params["dense.b"] = torch.zeros(1, self.num_classes)
        return params

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """x [T, B, C, H, W] -> logits [T, B, num_classes], each task with its own parameters."""
        F = torch.nn.functional
        t, b = x.shape[:2]
        h = x.transpose(0, 1).reshape(b, t * x.shape[2], *x.shape[3:])
        if t > 1:  # channels-last pays for grouped convolutions; a single task runs faster in NCHW on CPU
            h = h.contiguous(memory_format=torch.channels_last)
        for i in range(4):
            w = params[f"conv{i}.w"]
            h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), params[f"conv{i}.b"].reshape(-1),
                         stride=self.stride, padding=1, groups=t)
            h = F.batch_norm(h, None, None, params[f"bn{i}.gamma"].reshape(-1), params[f"bn{i}.beta"].reshape(-1),
                             training=True, eps=TF_BN_EPSILON)
            if self.pool:  # TF 'same' pooling = ceil mode: 84 -> 42 -> 21 -> 11 -> 6
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            h = F.relu(h)
        h = h.reshape(b, t, self.channels, -1).flatten(2).transpose(0, 1)  # [T, B, features]
        return torch.baddbmm(params["dense.b"], h, params["dense.w"])

    def loss(self, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-task summed cross-entropy over the minibatch, [T] (the official code sums, docs/paper.md §2.1)."""
        logits = self.forward(params, x)
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
        return ce.reshape(y.shape).sum(dim=1)


class OmniglotCNN(_ConvNet):
    """28x28x1 -> 4 x [conv 64, 3x3, stride 2, 'same' -> BN -> ReLU] -> 2*2*64 = 256 -> dense N.

    113,221 parameters for 5-way, 117,076 for 20-way. Padding 1 gives TF 'same''s sizes (28-14-7-4-2); TF pads
    even inputs on the bottom/right only, a one-pixel alignment difference we accept (docs/paper.md §2.1).
    """


class MiniImageNetCNN(_ConvNet):
    """84x84x3 -> 4 x [conv 32, 3x3, 'same' -> BN -> max-pool 2x2 stride 2 'same' -> ReLU] -> 6*6*32 = 1152 -> N.

    34,661 parameters for 5-way. BN before the pool (as the official code's current version); ceil-mode pooling = TF 'same'.
    """

    in_channels = 3
    channels = 32
    stride = 1
    pool = True
    features = 1152
