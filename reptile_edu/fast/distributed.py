"""Training past one device with ``torch.distributed``: the meta-batch's tasks are sharded across processes.

    torchrun --nproc_per_node=P -m reptile_edu train --preset omniglot-5way ...

Every process draws the same meta-batch (one seed, one generator), adapts its contiguous slice of the tasks on
the vectorised path, and the per-task results are combined by all-reduce (gloo on CPU, NCCL on GPU): the
displacement is a mean over tasks, and the vectorised path's merged Adam carry (``inner.merge_states``) a
weighted sum over tasks, so both are sums of per-shard parts. The Adam-state rule under sharding is therefore
exactly the vectorised path's; only the order of floating-point additions differs. Only rank 0 writes.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .. import inner, meta


def init_from_env(device: str) -> bool:
    """Join the process group that ``torchrun`` describes in the environment; False when run alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce_sum(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """One all-reduce for many tensors (flattened together)."""
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    return list(torch.split(flat, [t.numel() for t in tensors]))


def meta_step(algorithm: str, model, phi, batches, optimizer: str, lr: float, inner_state: dict | None,
              path: str = "vectorised", carry: bool = True, runs: int | None = None):
    """``meta.meta_step`` on the vectorised path (``path`` must say so), this process taking its share of the
    meta-batch's tasks.

    Returns what the single-process vectorised step returns: (d, carried inner state, losses [k, 1] averaged
    over all tasks).
    """
    if path != "vectorised":
        raise ValueError("training across processes shards the vectorised path: use path='vectorised'")
    if runs is not None:
        raise ValueError("several seeds train in one process: run them without torchrun, or one torchrun per seed")
    rank, size = world()
    total = batches[0][0].shape[0]
    if total < size:
        raise ValueError(f"meta_batch_size ({total}) must be at least the number of processes ({size})")
    first, last = rank * total // size, (rank + 1) * total // size
    local = [(x[first:last], y[first:last]) for x, y in batches]
    keep = carry and optimizer == "adam"
    start = inner_state if keep else None
    d, end, losses = meta.DISPLACEMENTS[algorithm](model, phi, local, optimizer, lr,
                                                    inner.expand_state(start, last - first))
    parts = [v * (last - first) for v in d.values()] + [losses.sum(dim=1)]
    merged = inner.merge_states(start, end, losses.shape[0], first, total) if keep else None
    if merged is not None:
        parts += list(merged["v"].values())
    reduced = _all_reduce_sum(parts)
    d = {k: r.reshape(v.shape) / total for (k, v), r in zip(d.items(), reduced)}
    losses = (reduced[len(d)] / total).reshape(-1, 1)
    if merged is not None:
        merged["v"] = {k: r.reshape(v.shape) for (k, v), r in zip(merged["v"].items(), reduced[len(d) + 1:])}
    return d, merged, losses
