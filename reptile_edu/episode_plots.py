"""Figures for the image chapters: one episode before/after adaptation, and a live training plot.

Data in, figure out; matplotlib and IPython are imported here only (the core never imports this module).
"""
from __future__ import annotations

import numpy as np

from .data_plots import _image


def plot_adaptation(episode, result, max_queries: int = 5):
    """Each query image with its non-transductive class probabilities before and after adaptation. A
    ``matplotlib.figure.Figure`` outside pyplot (see ``plots``): show it with ``display(fig)``."""
    from matplotlib.figure import Figure

    _, _, qx, qy = episode
    n = min(max_queries, qx.shape[1])
    fig = Figure(figsize=(2.0 * n, 3.9), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False, gridspec_kw={"height_ratios": [1.2, 1]})
    classes = result["probs_after"].shape[1]
    for j in range(n):
        ax = axes[0, j]
        ax.imshow(_image(qx[0, j]), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        before = result["before"]["non_transductive"][j].item()
        after = result["after"]["non_transductive"][j].item()
        ok = "right" if after == qy[0, j].item() else "wrong"
        ax.set_title(f"query {qy[0, j].item()}\nbefore {before} -> after {after} ({ok})", fontsize=8)
        ax = axes[1, j]
        xs = np.arange(classes)  # numpy, not tensors: matplotlib's unit conversion of tensors is deprecated
        ax.bar(xs - 0.2, result["probs_before"][j].numpy(), width=0.4, label="before", color="0.7")
        ax.bar(xs + 0.2, result["probs_after"][j].numpy(), width=0.4, label="after", color="tab:green")
        ax.set_ylim(0, 1)
        ax.set_xticks(xs)
        if j == 0:
            ax.set_ylabel("p(class)")
    fig.legend(*axes[1, 0].get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle("one episode: class probabilities per query (non-transductive), before and after adaptation",
                 fontsize=9)
    return fig


def live_training(meta_iters: int, every: int = 10, key: str = "non_transductive"):
    """A ``meta_train`` callback redrawing the inner loss and the periodic few-shot accuracy in place.

    It updates one display slot (``display(display_id=True)`` then ``.update``) rather than clearing the cell,
    so a progress bar in the same cell survives; the last drawing stays in the notebook as a static image.
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    losses, evals, slot = [], [], []

    def figure():
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
        a.plot(range(1, len(losses) + 1), losses, lw=0.8)
        a.set_xlabel("meta-iteration")
        a.set_ylabel("inner loss (first batch, summed)")
        a.set_xlim(0, meta_iters)
        b.plot([e[0] for e in evals], [e[1] for e in evals], "o-")
        b.set_xlabel("meta-iteration")
        b.set_ylabel(f"{key.replace('_', '-')} accuracy (%)")
        b.set_xlim(0, meta_iters)
        fig.tight_layout()
        return fig

    def callback(event):
        if event["event"] == "step":
            losses.append(event["loss"])
        elif event["event"] == "eval":
            evals.append((event["iteration"], event[key]))
        if event["event"] == "eval" or (event["event"] == "step" and event["iteration"] % every == 0):
            fig = figure()
            if slot and slot[0] is not None:
                slot[0].update(fig)
            else:  # first drawing (outside IPython display returns no handle: each drawing is shown anew)
                slot[:] = [display(fig, display_id=True)]
            plt.close(fig)

    callback.losses, callback.evals = losses, evals
    return callback
