"""Pictures of the data: an episode grid, one character's 20 drawers, the four training rotations.

Each function takes tensors (or an ``ImageDataset``), draws on a new figure and returns it; matplotlib is
imported here only, so the core package never needs it.
"""
from __future__ import annotations

import torch

from .tasks import ImageDataset


def _image(x: torch.Tensor):
    """[C, H, W] float in [0, 1] or uint8 -> what imshow wants (HxW grey or HxWx3)."""
    x = x.float() / 255 if x.dtype == torch.uint8 else x
    x = x.detach().cpu()
    return (x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)).numpy()


def _grid(rows, titles=None, suptitle=None, row_labels=None):
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.2 * n_cols, 1.3 * n_rows), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(row):
                ax.imshow(_image(row[j]), cmap="gray", vmin=0, vmax=1)
                if titles is not None:
                    ax.set_title(titles[i][j], fontsize=8)
            else:
                ax.axis("off")
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_episode(support_x, support_y, query_x, query_y, task: int = 0, max_shots: int = 5):
    """One evaluation task (from ``tasks.eval_episodes``): a row per class, its support shots, then its query."""
    rows, titles, labels = [], [], []
    for label in query_y[task].tolist():
        shots = support_x[task][support_y[task] == label][:max_shots]
        query = query_x[task][query_y[task] == label]
        rows.append(list(shots) + list(query))
        titles.append([f"support {label}"] * len(shots) + [f"query {label}"] * len(query))
        labels.append(f"label {label}")
    return _grid(rows, titles, f"{len(rows)}-way episode: support (left) and query (right)", labels)


def plot_drawers(dataset: ImageDataset, class_index: int = 0, per_row: int = 10):
    """All images of one class: for Omniglot, the same character drawn by its 20 drawers."""
    images = list(dataset.images[class_index])
    rows = [images[i:i + per_row] for i in range(0, len(images), per_row)]
    return _grid(rows, suptitle=f"{dataset.class_names[class_index]}: {len(images)} drawers")


def plot_rotations(dataset: ImageDataset, character: int = 0, num_images: int = 3):
    """The rotated copies of one training character, which the paper treats as separate classes."""
    n_rot = len(dataset.rotations)
    rows = [list(dataset.images[n_rot * character + r, :num_images]) for r in range(n_rot)]
    labels = [f"{rot} deg (class {n_rot * character + r})" for r, rot in enumerate(dataset.rotations)]
    return _grid(rows, suptitle="rotations are separate classes (train only)", row_labels=labels)
