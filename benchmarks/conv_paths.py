"""The per-task convolution block, candidate by candidate, layer by layer, against the same layers with one weight
shared by every image (the bound): why ``models`` folds the tasks into a channels-last grouped convolution.

    python benchmarks/conv_paths.py                              # Omniglot net, 20 tasks x 5 images (evaluation)
    python benchmarks/conv_paths.py --net miniimagenet --tasks 5 --batch 10
    python benchmarks/conv_paths.py --compile                    # also torch.compile of the whole step
    REPTILE_EDU_SMOKE=1 python benchmarks/conv_paths.py          # seconds, for checking the script

A block is conv 3x3 -> batch norm (batch statistics) -> [max-pool] -> ReLU for T tasks of B images, each task with
its own weights. Candidates:
1. ``planes``: grouped convolution (tasks folded into the channels), channels-last, batch norm and ReLU on the
   4-D tensor: what ``models`` runs.
2. ``rows``: the same convolution, batch norm and ReLU on the activation viewed as a [B*H*W, T*C] matrix (the
   same numbers; a contiguous matrix avoids ReLU's slow backward on a large 4-D channels-last tensor).
3. ``nchw``: grouped convolution and batch norm in the default NCHW layout.
4. ``unfold``: ``F.unfold`` (im2col) and one batched matrix product per layer, no grouped convolution.
5. ``loop``: a Python loop over tasks, one plain convolution each.
6. ``shared``: ONE weight for all T*B images (not the per-task computation): the speed a per-task kernel aims at.
Times are milliseconds per image, forward and backward (forward + backward minus forward), the minimum over
alternating rounds, one thread. ``net_ms_img`` times the package's own network (``inner.gradients``);
``--compile`` adds ``torch.compile`` of its loss (inductor, CPU) and reports the compile seconds. Last line: one
flat JSON object.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

from reptile_edu import budget, inner, results
from reptile_edu.models import TF_BN_EPSILON, MiniImageNetCNN, OmniglotCNN, stack

CANDIDATES = ("planes", "rows", "nchw", "unfold", "loop", "shared")
CL = torch.channels_last


def _bn(h, pool, layout):
    """Batch norm (per channel, batch statistics), [pool], ReLU of a [N, C, H, W] activation in ``layout``."""
    n, c, height, width = h.shape
    if layout == "rows":
        m = F.relu(F.batch_norm(h.permute(0, 2, 3, 1).reshape(-1, c), None, None, None, None, True,
                                eps=TF_BN_EPSILON))
        h = m.view(n, height, width, c).permute(0, 3, 1, 2)
        return F.max_pool2d(h, 2, 2, ceil_mode=True) if pool else h
    h = F.batch_norm(h, None, None, None, None, True, eps=TF_BN_EPSILON)
    return F.relu(F.max_pool2d(h, 2, 2, ceil_mode=True) if pool else h)


def block(path, h, w, stride, pool):
    """One conv block for T tasks: h [T, B, C, H, W] (contiguous), w [T, O, C, 3, 3] -> [T, B, O, H', W']."""
    t, b, c = h.shape[:3]
    if path in ("planes", "rows", "nchw"):
        x = h.transpose(0, 1).reshape(b, t * c, *h.shape[3:])
        x = x if path == "nchw" else x.contiguous(memory_format=CL)
        out = F.conv2d(x, w.reshape(-1, *w.shape[2:]), None, stride, 1, groups=t)
        out = _bn(out, pool, "rows" if path == "rows" else "planes")
        return out.reshape(b, t, w.shape[1], *out.shape[2:]).transpose(0, 1)
    if path == "unfold":
        cols = F.unfold(h.reshape(t * b, c, *h.shape[3:]), 3, padding=1, stride=stride)  # [T*B, 9C, L]
        size = (h.shape[3] + 2 - 3) // stride + 1
        cols = cols.view(t, b, 9 * c, -1).transpose(1, 2).reshape(t, 9 * c, -1)
        out = torch.bmm(w.reshape(t, w.shape[1], -1), cols)  # [T, O, B*L]
        out = out.view(t, w.shape[1], b, size, size).transpose(1, 2).reshape(t * b, w.shape[1], size, size)
        return _bn_per_task(out, t, pool)
    if path == "loop":
        out = torch.cat([F.conv2d(h[i], w[i], None, stride, 1) for i in range(t)])
        return _bn_per_task(out, t, pool)
    # shared: one weight, every image one batch (a different function: the bound, not a candidate)
    out = F.conv2d(h.reshape(t * b, c, *h.shape[3:]).contiguous(memory_format=CL), w[0], None, stride, 1)
    out = _bn(out, pool, "planes")
    return out.reshape(t, b, *out.shape[1:])


def _bn_per_task(out, t, pool):
    """Per-task batch statistics for [T*B, O, H, W]: fold the tasks into channels for one batch-norm call."""
    tb, o = out.shape[:2]
    x = out.view(t, tb // t, o, *out.shape[2:]).transpose(0, 1).reshape(tb // t, t * o, *out.shape[2:])
    x = _bn(x, pool, "planes")
    return x.reshape(tb // t, t, o, *x.shape[2:]).transpose(0, 1).reshape(t, tb // t, o, *x.shape[2:])


def _min_time(jobs: dict, rounds: int) -> dict:
    for job in jobs.values():
        job()
    best = dict.fromkeys(jobs, float("inf"))
    for _ in range(rounds):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def layer_times(net, tasks, batch, rounds) -> list[dict]:
    """Per layer and candidate: forward and backward ms per image."""
    gen = torch.Generator().manual_seed(0)
    size, channels = (28, 1) if isinstance(net, OmniglotCNN) else (84, 3)
    rows = []
    for i in range(4):
        h = torch.rand(tasks, batch, channels, size, size, generator=gen)
        w = torch.randn(tasks, net.channels, channels, 3, 3, generator=gen) * 0.1
        h.requires_grad_(i > 0)  # the first layer's input is data: no gradient, as in training
        w.requires_grad_()
        grad = torch.randn_like(block("planes", h, w, net.stride, net.pool))
        jobs = {}
        for path in CANDIDATES:
            jobs[f"{path}_fwd"] = lambda p=path: block(p, h, w, net.stride, net.pool)
            jobs[f"{path}_both"] = lambda p=path: torch.autograd.grad(block(p, h, w, net.stride, net.pool), [w] +
                                                                      ([h] if h.requires_grad else []), grad)
        best = _min_time(jobs, rounds)
        row = {"layer": i, "in": f"{channels}x{size}x{size}"}
        for path in CANDIDATES:
            fwd, both = best[f"{path}_fwd"], best[f"{path}_both"]
            row[f"{path}_fwd"] = round(fwd / (tasks * batch) * 1e3, 4)
            row[f"{path}_bwd"] = round(max(both - fwd, 0.0) / (tasks * batch) * 1e3, 4)
        rows.append(row)
        size, channels = block("planes", h.detach(), w.detach(), net.stride, net.pool).shape[-1], net.channels
    return rows


def network_times(model, tasks, batch, rounds, compile_: bool) -> dict:
    """The package's whole network, ``inner.gradients`` (and compiled): ms per image; compile seconds."""
    size, channels = (28, 1) if isinstance(model, OmniglotCNN) else (84, 3)
    gen = torch.Generator().manual_seed(0)
    params = stack(model.init_params(gen), tasks)
    x, y = torch.rand(tasks, batch, channels, size, size, generator=gen), torch.randint(0, 5, (tasks, batch))
    jobs = {"net": lambda: inner.gradients(model, params, x, y)}
    out = {}
    if compile_:
        compiled = torch.compile(lambda p, xx, yy: model.loss(p, xx, yy).sum())
        start = time.perf_counter()
        torch.autograd.grad(compiled(params, x, y), list(params.values()))
        out["compile_s"] = round(time.perf_counter() - start, 1)
        jobs["net_compiled"] = lambda: torch.autograd.grad(compiled(params, x, y), list(params.values()))
    best = _min_time(jobs, rounds)
    out.update({f"{name}_ms_img": round(t / (tasks * batch) * 1e3, 4) for name, t in best.items()})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--net", default="omniglot", choices=["omniglot", "miniimagenet"])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (tens of seconds to compile)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    net_cls = OmniglotCNN if args.net == "omniglot" else MiniImageNetCNN
    tasks, rounds = budget(args.tasks, 2), budget(7, 1)
    layers = layer_times(net_cls(5), tasks, args.batch, rounds)
    cols = [f"{p}_{d}" for p in CANDIDATES for d in ("fwd", "bwd")]
    print("layer  input      " + " ".join(f"{c:>12}" for c in cols))
    for row in layers:
        print(f"{row['layer']:5d}  {row['in']:10s} " + " ".join(f"{row[c]:12.4f}" for c in cols))
    totals = {f"{p}_ms_img": round(sum(r[f"{p}_fwd"] + r[f"{p}_bwd"] for r in layers), 4) for p in CANDIDATES}
    nets = network_times(net_cls(5), tasks, args.batch, rounds, args.compile)
    out = {"device": results.device_name("cpu") + " (1 thread)", "net": args.net, "tasks": tasks, "batch": args.batch,
           **{f"blocks_{k}": v for k, v in totals.items()},
           "planes_over_shared": round(totals["planes_ms_img"] / totals["shared_ms_img"], 3), **nets}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
