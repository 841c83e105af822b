"""One episode up close, and where the notebooks find (or fetch) image data.

``evaluation.evaluate`` answers "how accurate, over thousands of tasks"; the functions here answer "what did
adaptation change on THIS task": the same official adaptation (``inner.run`` on ``tasks.support_batches``)
and the same two prediction modes (``evaluation.logits``), returned before and after for one episode.
"""
from __future__ import annotations

import io
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from . import inner, tasks
from .config import OFFLINE_ENV, data_root, offline
from .evaluation import MODES, evaluate, logits
from .models import stack


def sample_episode(dataset, num_classes: int = 5, num_shots: int = 1, seed: int = 0):
    """One evaluation task ``(support_x, support_y, query_x, query_y)`` with T = 1, fixed by ``seed``."""
    return tasks.eval_episodes(dataset, num_classes, num_shots, 1, torch.Generator().manual_seed(seed))


def adapt_episode(model, phi, adam_state, episode, inner_iters: int = 50, batch_size: int = 5,
                  inner_lr: float = 1e-3, optimizer: str = "adam", seed: int = 0) -> dict:
    """Adapt ``phi`` to one episode exactly as the official evaluation does, and report before/after.

    Returns ``{"before": {mode: preds [N]}, "after": {...}, "probs_before"/"probs_after": [N, N]
    (non-transductive), "accuracy_before"/"accuracy_after": {mode: percent}, "query_y": [N], "losses": [k],
    "params": the adapted weights ([1, ...])}``.
    ``adam_state`` ([1, ...] or None) is the carried inner state the evaluation starts from; never modified.
    """
    if inner_iters < 0:
        raise ValueError(f"inner_iters must be >= 0 (got {inner_iters})")
    sx, sy, qx, qy = episode
    if sx.shape[0] != 1:
        raise ValueError(f"adapt_episode takes one episode (T = 1), got T = {sx.shape[0]}")
    device = next(iter(phi.values())).device
    sx, sy, qx, qy = sx.to(device), sy.to(device), qx.to(device), qy.to(device)
    start = stack(phi, 1)
    out = {"query_y": qy[0].cpu(), "before": {}, "after": {}, "accuracy_before": {}, "accuracy_after": {}}
    params, losses = start, torch.zeros(0)
    if inner_iters:
        batches = tasks.support_batches(sx, sy, min(batch_size, sy.shape[1]), inner_iters,
                                        torch.Generator().manual_seed(seed))
        state = inner.expand_state(adam_state, 1) if optimizer == "adam" else None
        params, _, losses = inner.run(model, start, batches, optimizer, inner_lr, state)
    for when, p in (("before", start), ("after", params)):
        scores = logits(model, p, sx, qx)  # one set of forwards gives the predictions and the probabilities
        for mode in MODES:
            pred = scores[mode][0].argmax(dim=-1)
            out[when][mode] = pred.cpu()
            out[f"accuracy_{when}"][mode] = 100.0 * (pred == qy[0]).double().mean().item()
        out[f"probs_{when}"] = scores["non_transductive"][0].softmax(dim=-1).cpu()
    out["losses"] = losses[:, 0].cpu() if losses.numel() else losses
    out["params"] = params
    return out


# --- where the notebooks find data ---------------------------------------------------------------------------

def find_data_root(dataset: str) -> Path | None:
    """``data_root()/<dataset>`` (``$REPTILE_EDU_DATA`` or the default root) if it holds anything, else None."""
    candidate = data_root() / dataset
    return candidate if candidate.is_dir() and any(candidate.iterdir()) else None


def write_tiny_omniglot(root, characters: int = 8, per_class: int = 20, seed: int = 0) -> Path:
    """Generated stand-in for Omniglot in the accepted zip layout (random strokes on white, 105x105 mode "1"):
    two background alphabets and one evaluation alphabet of ``characters`` characters each. Far fewer than
    1,623 characters, so load it with ``benchmark="background-evaluation"`` (the Reptile split's first 1,200
    would take them all). For machines without the data: every cell runs, but nothing learned means anything.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for set_name, alphabets in (("images_background", ("Alpha", "Beta")), ("images_evaluation", ("Gamma",))):
        with zipfile.ZipFile(root / f"{set_name}.zip", "w") as z:
            for alphabet in alphabets:
                for c in range(1, characters + 1):
                    strokes = rng.integers(10, 75, size=(3, 2))
                    for i in range(1, per_class + 1):
                        arr = np.ones((105, 105), dtype=bool)
                        for r, col in strokes + rng.integers(-3, 4, size=(3, 2)):
                            arr[r:r + 22, col:col + 5] = False
                        buf = io.BytesIO()
                        Image.fromarray(arr).convert("1").save(buf, format="PNG")
                        z.writestr(f"{set_name}/{alphabet}/character{c:02d}/{c:04d}_{i:02d}.png", buf.getvalue())
    return root


def omniglot_or_standin(splits=("train", "test")) -> tuple[Path, bool, tuple]:
    """The chapters' Omniglot: ``(root, real, datasets in splits order)``.

    The real set (``find_data_root``) on the paper's 1,200/423 split; if it is missing, it is downloaded into
    the data root first (checked, with a progress bar), unless ``REPTILE_EDU_OFFLINE`` is set. Failing that (one
    printed line says why), a stand-in from ``write_tiny_omniglot`` in a temporary folder on its
    background/evaluation split, with its expected "not 1,623 characters" warning silenced (``real`` is then
    False, and the notebook says so).
    """
    from .data.download import download_omniglot
    from .data.omniglot import load_omniglot

    root = find_data_root("omniglot")
    if root is None and offline():
        print(f"No Omniglot in {data_root() / 'omniglot'} and {OFFLINE_ENV} is set: using a generated stand-in.")
    elif root is None:
        print(f"No Omniglot in {data_root() / 'omniglot'}: downloading it there (about 15 MB, checked).")
        try:
            root = download_omniglot(data_root() / "omniglot", progress=True)
        except (OSError, ValueError) as exc:
            print(f"Download failed ({exc}): using a generated stand-in.")
    real = root is not None
    if not real:
        root = write_tiny_omniglot(Path(tempfile.mkdtemp()) / "omniglot")
    with warnings.catch_warnings():
        warnings.simplefilter("default" if real else "ignore")
        datasets = tuple(load_omniglot(root, split, benchmark="reptile" if real else "background-evaluation")
                         for split in splits)
    return root, real, datasets


def write_tiny_miniimagenet(root, classes=(6, 2, 5), per_class: int = 16, seed: int = 0) -> Path:
    """Generated stand-in for Mini-ImageNet as one zip of ``<split>/<wnid>/<file>.jpg`` (84x84 RGB noise with a
    per-class colour cast), for machines without the real images. The defaults are the least that the
    ``miniimagenet-5way`` preset can train on (5 ways, 15 training shots) and evaluate (5 test classes)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    wnid = 0
    with zipfile.ZipFile(root / "tiny_miniimagenet.zip", "w") as z:
        for split, count in zip(("train", "val", "test"), classes):
            for _ in range(count):
                wnid += 1
                cast = rng.integers(0, 128, size=3)
                for i in range(per_class):
                    img = (rng.integers(0, 128, size=(84, 84, 3)) + cast).astype(np.uint8)
                    buf = io.BytesIO()
                    Image.fromarray(img).save(buf, format="JPEG")
                    z.writestr(f"{split}/n{wnid:08d}/n{wnid:08d}_{i:04d}.jpg", buf.getvalue())
    return root


def explore(model, phi, adam_state, dataset, num_classes: int = 5, num_shots: int = 1, inner_iters: int = 50,
            inner_lr: float = 1e-3, batch_size: int = 5, num_tasks: int = 20, seed: int = 0) -> dict:
    """What the test-time widget shows for one setting: accuracy over ``num_tasks`` fixed tasks (both modes,
    ``evaluation.evaluate``) and one episode adapted with ``adapt_episode``. ``inner_iters = 0`` is "no
    adaptation" (the accuracy of the meta-initialisation itself, which is chance for a random head)."""
    if inner_iters >= 1:
        acc = evaluate(model, phi, adam_state, dataset, num_classes, num_shots, num_tasks, batch_size, inner_iters,
                       inner_lr, seed)
        accuracy = {m: (acc[m]["accuracy"], acc[m]["ci95"]) for m in MODES}
    else:
        accuracy = None
    episode = sample_episode(dataset, num_classes, num_shots, seed)
    result = adapt_episode(model, phi, adam_state, episode, inner_iters, batch_size, inner_lr, seed=seed)
    return {"accuracy": accuracy, "episode": episode, "result": result, "tasks": num_tasks}


def accuracy_probe(model, dataset, num_classes: int = 5, num_shots: int = 1, num_tasks: int = 10,
                   batch_size: int = 5, inner_iters: int = 50, inner_lr: float = 1e-3, seed: int = 0):
    """An ``eval_set`` for ``meta_train``: ``probe(phi, inner_state) -> {"transductive": %, "non_transductive": %}``
    on the same ``num_tasks`` fixed tasks every time, so a live curve compares like with like."""
    def probe(phi, inner_state):
        out = evaluate(model, phi, inner_state, dataset, num_classes, num_shots, num_tasks, batch_size,
                       inner_iters, inner_lr, seed)
        return {m: out[m]["accuracy"] for m in MODES}

    return probe
