"""Thin ipywidgets wiring over tested package functions (no maths here).

Only core widgets that exist in ipywidgets 7 and 8 (Colab has shipped both), and every handler calls a
function that a normal notebook cell or a unit test also calls.

How a widget shows a result, and why: the figure is a ``matplotlib.figure.Figure`` built outside pyplot,
rendered to PNG bytes, and set as the value of an ``Image`` widget, with the text line in an ``HTML`` widget
beside it. Nothing is printed into an ``Output`` capture and no pyplot figure is ever open, so a front end that
handles widget messages on another thread (JupyterLab's kernel subshells) cannot render a figure half-built
or twice; each update is one message. Work that takes more than a moment disables its own controls and shows
progress until it is done, and an error is shown in the widget as one line, never as a traceback.
"""
from __future__ import annotations

import html
import io

import ipywidgets as w

from . import plots
from .config import ALGORITHMS, budget
from .presets import sine_config
from .evaluation import sine_eval_set, sine_predictions
from .train import meta_train

DPI = 96


def png(fig) -> bytes:
    """A figure as PNG bytes, cropped to what is drawn (legends beside the axes included)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


class _Result:
    """A status line and a figure that are replaced, never appended to; hidden until there is a figure."""

    def __init__(self):
        self.status = w.HTML()
        self.image = w.Image(format="png", layout={"display": "none"})

    def say(self, text: str, kind: str = "") -> None:
        colour = {"error": "#b00020", "busy": "#555555"}.get(kind, "inherit")
        self.status.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def show(self, fig, text: str = "", kind: str = "") -> None:
        self.image.value = png(fig)
        self.image.layout.display = None
        self.say(text, kind)


def _busy(controls, result: _Result, message: str):
    """Run ``work()`` with ``controls`` disabled and ``message`` shown; a ValueError (bad input) or a
    FloatingPointError (divergence) not handled by ``work`` becomes one line in the widget."""
    def run(work):
        for c in controls:
            c.disabled = True
        result.say(message, "busy")
        try:
            work()
        except (ValueError, FloatingPointError) as exc:
            result.say(f"{exc}", "error")
        finally:
            for c in controls:
                c.disabled = False
    return run


def sine_trainer(model, init_params, task_seed: int = 7, meta_iters: int | None = None):
    """Sliders for the algorithm, inner steps, inner step size, outer step size and shots; a Train button
    meta-trains with ``meta_train`` (progress bar fed by its callback) and redraws the adaptation figure
    of the same held-out task before and after meta-training. A run that diverges is shown as its loss curve
    with a one-line note of what to lower."""
    style = {"description_width": "120px"}
    algorithm = w.Dropdown(options=ALGORITHMS, value="reptile",
                           description="algorithm", style=style)
    inner_iters = w.IntSlider(value=5, min=1, max=10, description="inner steps k", style=style,
                              continuous_update=False)
    inner_lr = w.FloatLogSlider(value=0.02, base=10, min=-3, max=-0.7, description="inner step α",
                                style=style, continuous_update=False)
    meta_step = w.FloatLogSlider(value=1.0, base=10, min=-4, max=0, description="outer step ε",
                                 style=style, continuous_update=False)
    shots = w.IntSlider(value=10, min=2, max=25, description="shots (points)", style=style, continuous_update=False)
    iters = w.IntSlider(value=meta_iters or budget(1_000, 5), min=5, max=5_000, step=5, description="meta-iterations",
                        style=style, continuous_update=False)
    button = w.Button(description="Train", button_style="primary")
    progress = w.IntProgress(value=0, min=0, max=1, description="progress")
    result = _Result()
    result.say("Press Train to meta-train with these settings.")
    run = _busy([button, algorithm, inner_iters, inner_lr, meta_step, shots, iters], result, "training…")

    def on_algorithm(change):  # Reptile interpolates (step ~1); FOMAML/MAML use Adam (lr ~1e-3) and need k >= 2
        meta_step.value = sine_config(change["new"]).meta_step_size
        inner_iters.min = 2 if change["new"] in ("fomaml", "maml") else 1

    def work():
        config = sine_config(algorithm.value, "fast", inner_iters=inner_iters.value, inner_lr=inner_lr.value,
                             meta_step_size=meta_step.value, inner_batch_size=shots.value,
                             meta_iters=iters.value, eval_interval=iters.value)
        progress.max, progress.value = config.meta_iters, 0
        losses = []

        def callback(event):
            if event["event"] == "step":
                losses.append(event["loss"])
                if event["iteration"] % 10 == 0 or event["iteration"] == config.meta_iters:
                    progress.value = event["iteration"]

        try:
            history = meta_train(config, callback=callback)
        except FloatingPointError:
            where = f"{config.algorithm} diverged at meta-iteration {len(losses) + 1} of {config.meta_iters}"
            result.show(plots.divergence(losses, f"{where}: the loss before it blew up"),
                        f"{where}: the loss left the floating-point range. Lower the inner step α "
                        f"({config.inner_lr:.3g}) or the outer step ε ({config.meta_step_size:.3g}).", "error")
            return
        task = sine_eval_set(1, shots.value, seed=task_seed)
        inits = {"before meta-training": init_params, algorithm.value: history.params}
        fig = plots.sine_comparison(task, sine_predictions(model, inits, task, lr=inner_lr.value))
        result.show(fig, f"{config.algorithm}: {config.meta_iters} meta-iterations in {history.wall_s:.1f} s")

    algorithm.observe(on_algorithm, names="value")
    button.on_click(lambda _: run(work))
    box = w.VBox([w.HBox([w.VBox([algorithm, inner_iters, inner_lr]), w.VBox([meta_step, shots, iters])]),
                  w.HBox([button, progress]), result.status, result.image])
    box.controls = {"algorithm": algorithm, "inner_iters": inner_iters, "inner_lr": inner_lr,
                    "meta_step_size": meta_step, "shots": shots, "meta_iters": iters}
    box.train_button, box.progress, box.status, box.image = button, progress, result.status, result.image
    return box


def episode_explorer(model, phi, inner_state, dataset, num_classes: int = 5, num_tasks: int = 20, seed: int = 0,
                     initial: dict | None = None):
    """Sliders for test-time adaptation steps, inner step size and shots; each change calls
    ``evaluation.explore`` (accuracy over ``num_tasks`` fixed tasks + one episode) and redraws the episode's
    before/after predictions with ``plots.plot_adaptation``. ``initial``: an ``explore`` result already
    computed for the default settings (50 steps, 1e-3, 1 shot), shown first instead of recomputing it.
    While it computes, the sliders are disabled and the line above the figure says so."""
    from . import evaluation

    style = {"description_width": "130px"}
    defaults = (50, 1e-3, 1)  # steps, step size, shots: the settings an ``initial`` result was computed with
    steps = w.IntSlider(value=defaults[0], min=0, max=100, step=5, description="adaptation steps", style=style,
                        continuous_update=False)
    lr = w.FloatLogSlider(value=defaults[1], base=10, min=-4, max=-1.5, description="inner step size", style=style,
                          continuous_update=False)
    shots = w.IntSlider(value=defaults[2], min=1, max=min(5, dataset.per_class - 1), description="shots", style=style,
                        continuous_update=False)
    result = _Result()
    run = _busy([steps, lr, shots], result, "adapting…")

    def work():
        setting = (steps.value, lr.value, shots.value)
        if initial is not None and setting == defaults:
            out = initial
        else:
            out = evaluation.explore(model, phi, inner_state, dataset, num_classes=num_classes, num_shots=shots.value,
                                     eval_inner_iters=steps.value, inner_lr=lr.value, num_tasks=num_tasks,
                                     eval_seed=seed)
        if out["accuracy"] is None:
            text = "0 steps: no adaptation; the episode below shows the meta-initialisation's own guesses"
        else:
            text = (", ".join(f"{m}: {a:.1f} ± {c:.1f}%" for m, (a, c) in out["accuracy"].items())
                    + f"  ({num_tasks} tasks; {steps.value} steps of {lr.value:.2g}, {shots.value}-shot)")
        result.show(plots.plot_adaptation(out["episode"], out["result"]), text)

    for control in (steps, lr, shots):
        control.observe(lambda _: run(work), names="value")
    run(work)
    box = w.VBox([w.HBox([steps, lr, shots]), result.status, result.image])
    box.controls = {"eval_inner_iters": steps, "inner_lr": lr, "shots": shots}
    box.status, box.image = result.status, result.image
    return box


def ablation_runner(cells, datasets, stored: dict | None = None, work_dir=None, meta_iters: int | None = None):
    """A dropdown of a grid's cells and a Train button: re-runs the picked cell on a short schedule
    (``ablations.shorten`` + ``ablations.run``, in ``work_dir``), with a progress bar fed by its training
    callback, and draws its learning curve (``plots.ablation_curves``) beside the stored full-grid curve of the
    same cell (``stored``: ``ablations.load`` output) on an axis of its own, since the two schedules differ."""
    import tempfile

    from matplotlib.figure import Figure

    from . import ablations

    style = {"description_width": "120px"}
    by_name = {c.name: c for c in cells}
    cell = w.Dropdown(options=list(by_name), description="run", style=style)
    iters = w.IntSlider(value=meta_iters or budget(300, 4), min=2, max=3_000, step=2, description="meta-iterations",
                        style=style, continuous_update=False)
    button = w.Button(description="Train", button_style="primary")
    progress = w.IntProgress(value=0, min=0, max=1, description="progress")
    result = _Result()
    result.say("Pick a run and press Train.")
    work_dir = work_dir or tempfile.mkdtemp(prefix="ablation-")
    run = _busy([button, cell, iters], result, "training…")

    def work():
        live = ablations.shorten(by_name[cell.value], iters.value, curve_tasks=budget(50, 3),
                                 final_tasks=budget(100, 3))
        progress.max, progress.value = live.config.meta_iters, 0

        def callback(event):
            if event["event"] == "step":
                progress.value = event["iteration"]
                if event["iteration"] == live.config.meta_iters:
                    result.say("scoring on the test tasks…", "busy")

        record = ablations.run(live, runs_dir=work_dir, results_dir=work_dir, datasets=datasets, show_progress=False,
                               callback=callback)
        progress.value = progress.max
        panels = {f"live: {iters.value} iterations": record}
        if stored and cell.value in stored:
            panels[f"stored grid: {stored[cell.value]['meta_iters_run']:,} iterations"] = stored[cell.value]
        fig = Figure(figsize=(5.2 * len(panels), 3.4), layout="constrained")
        for ax, (title, rec) in zip(fig.subplots(1, len(panels), sharey=True, squeeze=False)[0], panels.items()):
            plots.ablation_curves(ax, {cell.value: rec})
            ax.get_legend().remove()
            ax.set_title(title, fontsize=10)
        final = record["final"]["non-transductive"]
        result.show(fig, f"{cell.value}, live: {final['accuracy']:.1f} ± {final['ci95']:.1f}% after "
                         f"{record['meta_iters_run']} iterations ({record['train_wall_s']:.0f} s)")

    button.on_click(lambda _: run(work))
    box = w.VBox([w.HBox([cell, iters, button]), progress, result.status, result.image])
    box.controls = {"cell": cell, "meta_iters": iters}
    box.train_button, box.progress, box.status, box.image = button, progress, result.status, result.image
    return box
