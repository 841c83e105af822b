"""Every figure of the course: each takes data (and an axis, or makes a figure) and draws; nothing here trains
or evaluates.

Imported only by notebooks and the CLI, so ``import reptile_edu`` never pulls in matplotlib. Functions that
make a whole figure build a ``matplotlib.figure.Figure`` outside pyplot's list of open figures: a notebook shows
it with ``display(fig)``, and a widget redraw can never be picked up half-built by the inline backend.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

import numpy as np
import torch

from . import evaluation, runs
from .config import Config
from .tasks import ImageDataset

def sine_adaptation(ax, tasks: evaluation.SineEvalSet, preds: dict, title: str = ""):
    """The demo script's picture for one task: the true curve (green), the support points (black x) and the
    prediction after each number of adaptation steps, from blue (0 steps) to red (most steps)."""
    x = tasks.x_grid[0, :, 0].numpy()
    ax.plot(x, tasks.y_grid[0, :, 0].numpy(), color="green", lw=2, label="true")
    ax.plot(tasks.x_support[0, :, 0].numpy(), tasks.y_support[0, :, 0].numpy(), "kx", ms=8, label="support")
    steps = sorted(preds)
    for j, step in enumerate(steps):
        frac = j / max(len(steps) - 1, 1)
        ax.plot(x, preds[step][0].numpy(), color=(frac, 0, 1 - frac), label=f"after {step}")
    ax.set_ylim(-4, 4)
    ax.set_xlabel("x")
    ax.set_title(title)
    return ax


def sine_comparison(task: evaluation.SineEvalSet, predictions: dict, ncols: int = 3) -> Figure:
    """One panel per initialisation (``evaluation.sine_predictions``: e.g. random, Reptile, FOMAML, MAML) adapted
    on the same task, at most ``ncols`` panels a row (so the text stays legible at a notebook's width), the
    legend beside the last row."""
    rows = math.ceil(len(predictions) / ncols)
    cols = min(ncols, len(predictions))
    fig = Figure(figsize=(3.6 * cols + 1.6, 3.0 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False).ravel()
    for ax, (name, preds) in zip(axes, predictions.items()):
        sine_adaptation(ax, task, preds, name)
    for ax in axes[len(predictions):]:
        ax.set_axis_off()
    for ax in axes[::cols]:
        ax.set_ylabel("f(x)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    return fig


def divergence(losses: list[float], title: str) -> Figure:
    """A run that diverged: its logged loss per meta-iteration up to the failure (log scale)."""
    fig = Figure(figsize=(7, 3), layout="constrained")
    ax = fig.subplots()
    finite = [(i, x) for i, x in enumerate(losses, 1) if math.isfinite(x) and x > 0]
    ax.semilogy([i for i, _ in finite], [x for _, x in finite], "o-", color="tab:red", ms=3)
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel("first inner minibatch loss")
    ax.set_title(title, fontsize=10)
    return fig


def eval_curves(ax, histories: dict, key: str = "mse", ylabel: str = "MSE after adaptation"):
    """Periodic evaluations of several runs against meta-iteration (log y). A run given as a list of Histories
    (one per seed) is drawn as the mean over seeds with a band of +- one standard deviation across them."""
    for name, history in histories.items():
        seeds = history if isinstance(history, list) else [history]
        it = [e["iteration"] for e in seeds[0].evals]
        values = torch.tensor([[e[key] for e in h.evals] for h in seeds], dtype=torch.float64)
        line, = ax.plot(it, values.mean(0), marker="o", label=name + (f" ({len(seeds)} seeds)" if len(seeds) > 1 else ""))
        if len(seeds) > 1:
            std = values.std(0)
            ax.fill_between(it, values.mean(0) - std, values.mean(0) + std, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.legend()
    return ax


def training_curve(ax, curve: dict):
    """A paper run's training curve (``runs.read_curve``): the logged loss's mean and minimum per window, the
    floor that a uniform prediction sets (``runs.uniform_loss``), and the annealed meta-step on a twin axis."""
    c = curve["config"]
    uniform = runs.uniform_loss(c)
    ax.plot(curve["ends"], curve["mean"], color="tab:blue", label=f"logged loss, mean of {curve['window']:,}")
    ax.plot(curve["ends"], curve["min"], color="tab:blue", lw=0.8, alpha=0.4, label="minimum of the window")
    ax.axhline(uniform, color="k", ls="--", lw=1, label=f"uniform prediction: {uniform:.2f}")
    ax.set_xlabel("meta-iteration")
    ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:.0f}k" if x else "0")
    ax.set_ylabel("first inner minibatch loss (summed)")
    ax.set_title(f"{c['preset']}: {curve['iteration']:,} of {c['meta_iters']:,} meta-iterations")
    ax.legend(loc="best", fontsize=8)
    step = ax.twinx()
    ends = [0, c["meta_iters"]]  # the annealing is linear: its two ends draw it
    step.plot(ends, [Config(**c).meta_step_at(i) for i in ends], color="tab:gray", ls=":")
    step.set_ylabel("meta-step size (dotted)", color="tab:gray")
    return ax


# --- Notebook 02 (why it works): the gradient-expansion check of ``analysis.expansion_study`` ---------------

ALG_COLOURS = {"maml": "tab:red", "fomaml": "tab:orange", "reptile": "tab:blue", "joint": "tab:gray"}


def expansion_coefficients(ax, rows, alpha: float, coefficient: str = "b"):
    """Theory (lines) vs fitted (extrapolated, +- 2 s.e.) and raw fit (hollow) of one coefficient against k."""
    for alg, colour in ALG_COLOURS.items():
        sel = sorted((r for r in rows if r["alg"] == alg and r["alpha"] == alpha), key=lambda r: r["k"])
        if not sel:
            continue
        ks = [r["k"] for r in sel]
        ax.plot(ks, [r[f"theory_{coefficient}"] for r in sel], "-", color=colour, alpha=0.5, label=f"{alg} theory")
        ax.errorbar(ks, [r[f"fit_{coefficient}"] for r in sel], yerr=[2 * r[f"fit_{coefficient}_se"] for r in sel],
                    fmt="o", color=colour, capsize=3, label=f"{alg} fitted")
        ax.plot(ks, [r[f"raw_{coefficient}"] for r in sel], "o", mfc="none", color=colour, ms=10)
    ax.set_xlabel("k (minibatches per task)")
    ax.set_ylabel(f"coefficient {coefficient}" + (" of alpha AvgGradInner" if coefficient == "b" else " of AvgGrad"))
    ax.set_title(f"fitted at alpha = {alpha:g} (hollow: plain fit, filled: extrapolated)")
    ax.legend(fontsize=7, ncol=3)
    return ax


def coefficient_drift(ax, rows, alg: str, k: int):
    """Why we extrapolate: the plain fit of b drifts linearly with alpha; the extrapolated one sits on theory."""
    sel = sorted((r for r in rows if r["alg"] == alg and r["k"] == k), key=lambda r: r["alpha"])
    alphas = [r["alpha"] for r in sel]
    ax.axhline(sel[0]["theory_b"], color="k", lw=1, label="theory")
    ax.errorbar(alphas, [r["raw_b"] for r in sel], yerr=[2 * r["raw_b_se"] for r in sel], fmt="o-", capsize=3,
                color=ALG_COLOURS[alg], mfc="none", label="plain fit at alpha")
    ax.errorbar(alphas, [r["fit_b"] for r in sel], yerr=[2 * r["fit_b_se"] for r in sel], fmt="s", capsize=3,
                color=ALG_COLOURS[alg], label="extrapolated from alpha, 2 alpha")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())  # decade labels only: minor ones overlap
    ax.set_xlabel("alpha")
    ax.set_ylabel("b")
    ax.set_title(f"{alg}, k = {k}")
    ax.legend(fontsize=7)
    return ax


def residuals_vs_alpha(ax, alphas, residuals: dict, slopes: dict):
    """log-log || measured - predicted || against alpha, one line per (algorithm, k), with a slope-2 guide."""
    for alg, by_k in residuals.items():
        for i, (k, res) in enumerate(sorted(by_k.items())):
            ax.plot(alphas, res, "o-", color=ALG_COLOURS[alg], alpha=0.4 + 0.6 * (i + 1) / len(by_k),
                    label=f"{alg} (mean slope {slopes[alg]:.2f})" if i == len(by_k) - 1 else None)
    top = max(max(r) for by_k in residuals.values() for r in by_k.values())
    ax.plot(alphas, [top * (a / alphas[-1]) ** 2 for a in alphas], "k--", label="slope 2")
    return _log_log(ax, "alpha", "|| measured - leading-order prediction ||")


def _log_log(ax, xlabel: str, ylabel: str):
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())  # decade labels only: minor ones overlap
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return ax


def inner_grad_ratio(ax, rows):
    """The AvgGradInner : AvgGrad ratio |b| alpha / a of the plain fits against (k - 1) alpha, with theory lines
    2 (MAML), 1 (FOMAML), 1/2 (Reptile)."""
    for alg, slope_ in (("maml", 2.0), ("fomaml", 1.0), ("reptile", 0.5)):
        sel = [r for r in rows if r["alg"] == alg]
        x = [(r["k"] - 1) * r["alpha"] for r in sel]
        ax.plot(x, [abs(r["raw_b"]) * r["alpha"] / r["raw_a"] for r in sel], "o", color=ALG_COLOURS[alg], label=alg)
        ax.plot(sorted(x), [slope_ * v for v in sorted(x)], "-", color=ALG_COLOURS[alg], alpha=0.5)
    return _log_log(ax, "(k - 1) alpha", "AvgGradInner : AvgGrad weight in the update")


def coefficient_bars(ax, rows):
    """One (k, alpha): theory vs plain fit of b for each algorithm, as bars (for the widget)."""
    algs = [r["alg"] for r in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["theory_b"] for r in rows], 0.4, color="lightgray", label="theory")
    ax.bar([x + 0.2 for x in xs], [r["raw_b"] for r in rows], 0.4, yerr=[2 * r["raw_b_se"] for r in rows],
           color=[ALG_COLOURS[a] for a in algs], label="fitted at alpha")
    ax.set_xticks(list(xs), algs)
    ax.set_ylabel("b (coefficient of alpha AvgGradInner)")
    ax.set_title(f"k = {rows[0]['k']}, alpha = {rows[0]['alpha']:g}")
    ax.legend(fontsize=7)
    return ax


# --- Notebook 03 (solution manifolds): the 2-D toy of ``manifolds`` -----------------------------------------

def manifold_trajectories(ax, tasks, paths: dict, points: dict | None = None, box: float = 4.0):
    """The task curves (grey), meta-training paths (one colour each) and marked points (stars) in the plane."""
    import numpy as np

    t = np.linspace(0, 2 * np.pi, 400)
    for kind, a, r in zip(tasks.kind.tolist(), tasks.a.numpy(), tasks.r.numpy()):
        if kind == 0:  # circle
            ax.plot(a[0] + r * np.cos(t), a[1] + r * np.sin(t), color="gray", lw=1.5)
        else:  # line n . phi = b: through b n, along the tangent
            s = np.linspace(-3 * box, 3 * box, 2)
            ax.plot(r * a[0] - s * a[1], r * a[1] + s * a[0], color="gray", lw=1.5)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, path) in enumerate(paths.items()):
        path = np.asarray(path)
        ax.plot(path[:, 0], path[:, 1], ".-", ms=3, lw=1, color=colours[i % len(colours)], label=name)
    for i, (name, point) in enumerate((points or {}).items()):
        ax.plot(*np.asarray(point), "*", ms=14, mec="k", color=colours[(i + len(paths)) % len(colours)], label=name)
    ax.set_xlim(-box, box)
    ax.set_ylim(-box, box)
    ax.set_aspect("equal")
    ax.set_xlabel("phi_1")
    ax.set_ylabel("phi_2")
    ax.legend(fontsize=7, loc="upper left")
    return ax


def manifold_distances(ax, paths: dict, targets: dict):
    """Distance of each path's iterates to its own target point against meta-iteration (log y)."""
    import numpy as np

    for name, path in paths.items():
        gap = np.linalg.norm(np.asarray(path) - np.asarray(targets[name]), axis=1)
        ax.plot(np.maximum(gap, 1e-16), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel("distance to the predicted fixed point")
    ax.legend(fontsize=7)
    return ax


# --- Notebook 07 (first order vs MAML): cost per meta-iteration and accuracy at equal compute ----------------

def cost_vs_k(axes, devices: dict):
    """Seconds per meta-iteration and memory against k (log-log), one colour per algorithm, one marker per
    device; ``devices`` maps a device name to a ``benchmarks/costs.py`` results file. Memory: solid = bytes
    held by the autograd graph, dotted = peak RSS growth of a fresh process (where measured)."""
    ax_time, ax_mem = axes
    markers = dict(zip(sorted(devices), "osD^v"))
    for device, data in sorted(devices.items()):
        for alg in ("maml", "fomaml", "reptile"):
            rows = sorted((r for r in data["rows"] if r["algorithm"] == alg), key=lambda r: r["k"])
            if not rows:
                continue
            ks = [r["k"] for r in rows]
            style = dict(color=ALG_COLOURS[alg], marker=markers[device])
            ax_time.plot(ks, [r["median_s"] for r in rows], label=f"{alg} ({device})", **style)
            ax_mem.plot(ks, [r["saved_peak_bytes"] / 2**20 for r in rows], label=f"{alg} graph ({device})", **style)
            rss = [(r["k"], r["rss_delta_bytes"] / 2**20) for r in rows if r.get("rss_delta_bytes")]
            if rss:
                ax_mem.plot(*zip(*rss), ls=":", alpha=0.7, label=f"{alg} RSS ({device})", **style)
    for ax, ylabel in ((ax_time, "seconds per meta-iteration"), (ax_mem, "peak memory (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("k (minibatches = gradient evaluations per task)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    return axes


def accuracy_at_equal_compute(axes, accuracy: dict):
    """Sine: MSE after 32 steps (lower is better, 95% CI); Omniglot: 1- and 5-shot accuracy (transductive),
    each bar labelled with the training wall time it took at the same number of gradient evaluations."""
    ax_sine, ax_omni = axes
    sine = accuracy["sine"]
    bars = ax_sine.bar([r["algorithm"] for r in sine], [r["mse"] for r in sine], yerr=[r["mse_ci95"] for r in sine],
                       color=[ALG_COLOURS[r["algorithm"]] for r in sine], capsize=4)
    ax_sine.bar_label(bars, [f"{r['train_wall_s']:.0f} s" for r in sine], fontsize=8)
    ax_sine.set_ylabel("grid MSE after 32 steps")
    ax_sine.set_title(f"sine, {sine[0]['gradient_evaluations']:,} gradient evaluations each", fontsize=9)
    omni = accuracy["omniglot"]
    if omni:
        width = 0.38
        for j, shots in enumerate((1, 5)):
            xs = [i + (j - 0.5) * width for i in range(len(omni))]
            res = [r[f"{shots}shot"]["transductive"] for r in omni]
            bars = ax_omni.bar(xs, [x["accuracy"] for x in res], width, yerr=[x["ci95"] for x in res], capsize=3,
                               color=[ALG_COLOURS[r["algorithm"]] for r in omni], alpha=0.5 + 0.5 * j)
            ax_omni.bar_label(bars, [f"{shots}-shot" for _ in omni], fontsize=7)
        ax_omni.set_xticks(range(len(omni)), [f"{r['algorithm']}\n{r['train_wall_s']:.0f} s" for r in omni])
        ax_omni.axhline(20, color="gray", ls="--", lw=1)
        ax_omni.set_ylabel("5-way accuracy (%)")
        ax_omni.set_title(f"Omniglot, {omni[0]['meta_iters']} meta-iterations each (dashed: chance)", fontsize=9)
    return axes


def ablation_curves(ax, records: dict, mode: str = "non-transductive", styles: dict | None = None):
    """Figure 3: test accuracy (with its 95% CI band) against meta-iteration, one line per run; the final score
    (on more tasks) as a dot with its 95% CI at the last iteration. A run given as a list of records (one per
    seed, ``ablations.load_seeds``) is drawn as the mean over seeds, its band +- one standard deviation across
    seeds, and its dot the mean final score with the seeds' spread as the error bar (each seed's score a small
    mark beside it)."""
    for name, record in records.items():
        seeds = record if isinstance(record, list) else [record]
        it = [p["iteration"] for p in seeds[0]["curve"]]
        acc = torch.tensor([[p[mode]["accuracy"] for p in r["curve"]] for r in seeds], dtype=torch.float64)
        mean = acc.mean(0)
        half = acc.std(0) if len(seeds) > 1 else torch.tensor([p[mode]["ci95"] for p in seeds[0]["curve"]])
        label = name + (f" ({len(seeds)} seeds)" if len(seeds) > 1 else "")
        line, = ax.plot(it, mean, label=label, **(styles or {}).get(name, {}))
        ax.fill_between(it, mean - half, mean + half, color=line.get_color(), alpha=0.12)
        finals = [r["final"][mode] for r in seeds]
        spread = evaluation.across_seeds([f["accuracy"] for f in finals], [f["ci95"] for f in finals])
        end = seeds[0]["meta_iters_run"]
        ax.errorbar([end], [spread["mean"]], yerr=[spread["seed_std"] if len(seeds) > 1 else spread["ci95"]],
                    fmt="o", ms=4, capsize=3, color=line.get_color())
        if len(seeds) > 1:
            ax.plot([end * 1.01] * len(finals), [f["accuracy"] for f in finals], "_", color=line.get_color(), ms=6)
    ax.set_xlabel("outer iteration")
    ax.set_ylabel(f"test accuracy, {mode} (%)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the curves, never over them
    return ax


def accuracy_vs_setting(ax, records: dict, field: str, where: dict, mode: str = "non-transductive",
                        legend: bool = True):
    """Figure 4: final test accuracy (+- 95% CI) against a config ``field`` (``inner_iters``,
    ``inner_batch_size``), one line per variant, over the records whose config matches ``where``. ``records``
    maps run names ``"VARIANT k=K[ batch=B]"`` to results records."""
    lines: dict[str, list] = {}
    for name, record in records.items():
        config = record["config"]
        if all(config[key] == value for key, value in where.items()):
            lines.setdefault(name.split(" k=")[0], []).append((config[field], record["final"][mode]))
    for variant, points in lines.items():
        points.sort(key=lambda p: p[0])
        ax.errorbar([x for x, _ in points], [s["accuracy"] for _, s in points],
                    yerr=[s["ci95"] for _, s in points], marker="o", capsize=3, label=variant)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({x for points in lines.values() for x, _ in points}))
    ax.get_xaxis().set_major_formatter(plt.ScalarFormatter())
    ax.set_xlabel({"inner_iters": "inner iterations k", "inner_batch_size": "inner batch size"}.get(field, field))
    ax.set_ylabel(f"test accuracy, {mode} (%)")
    if legend:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the lines, never over them
    return ax


# --- images: the data, one episode before and after adaptation -------------------------------------------

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
        before = result["before"]["non-transductive"][j].item()
        after = result["after"]["non-transductive"][j].item()
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


def plot_drawings(drawings: list, images: list, titles: list[str], real: list | None = None):
    """Drawings as drawn (their strokes, one colour per stroke, y down) above the 28x28 images ``drawing.render``
    made of them, and optionally a row of ``real`` Omniglot images (uint8 [1, 28, 28]) to compare with."""
    rows = 2 + (real is not None)
    fig = Figure(figsize=(1.5 * len(drawings), 1.6 * rows), layout="constrained")
    axes = fig.subplots(rows, len(drawings), squeeze=False)
    for j, (strokes, image, title) in enumerate(zip(drawings, images, titles)):
        ax = axes[0, j]
        for stroke in strokes:
            points = np.asarray(stroke, dtype=float)
            ax.plot(points[:, 0], points[:, 1], lw=1.5, marker="." if len(points) == 1 else None)
        ax.set_aspect("equal")
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
        axes[1, j].imshow(_image(image), cmap="gray", vmin=0, vmax=1)
        if real is not None and j < len(real):
            axes[2, j].imshow(_image(real[j]), cmap="gray", vmin=0, vmax=1)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("strokes", fontsize=9)
    axes[1, 0].set_ylabel("28x28 input", fontsize=9)
    if real is not None:
        axes[2, 0].set_ylabel("Omniglot", fontsize=9)
    return fig
