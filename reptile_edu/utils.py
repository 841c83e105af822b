"""Seeding and small file helpers shared by the trainer, the CLI and the benchmarks."""
from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a torch generator for sampling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def cudnn_mode(deterministic: bool) -> None:
    """cuDNN's deterministic algorithms (a GPU run repeats bit for bit) or autotuned ones (faster); see
    ``Config.deterministic``. A CUDA graph keeps the algorithms it was captured with."""
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it, so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())


def progress_bar(total: int, desc: str = "", initial: int = 0):
    """A ``meta_train`` callback driving a tqdm bar (a widget in notebooks, text elsewhere; off with TQDM_DISABLE=1).

    ``initial``: the iteration a resumed run starts from (counted as done, not in the rate)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, initial=initial)

    def callback(event):
        if event["event"] == "step":
            bar.update(event["iteration"] - bar.n)
            if event["iteration"] % 100 == 0:
                bar.set_postfix(meta_step=f"{event['meta_step']:.3g}", loss=f"{event['loss']:.3g}", refresh=False)
            if event["iteration"] >= total:
                bar.close()
        elif event["event"] == "eval":
            bar.set_postfix({k: f"{v:.3g}" for k, v in event.items() if isinstance(v, float)}, refresh=False)

    return callback
