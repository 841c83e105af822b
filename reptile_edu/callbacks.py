"""Callbacks for ``train.meta_train`` in a notebook or a terminal: a progress bar and a live training plot.

The training loop reports events (``{"event": "step" | "eval", ...}``) and knows nothing of how they are shown;
these turn them into a tqdm bar or a redrawn figure. tqdm is imported when a bar is made, matplotlib and IPython
when a plot is.
"""
from __future__ import annotations


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


def live_training(meta_iters: int, every: int = 10, key: str = "non-transductive"):
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
        b.set_ylabel(f"{key} accuracy (%)")
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
