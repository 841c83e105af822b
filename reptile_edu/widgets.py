"""Thin ipywidgets wiring over tested package functions (no maths here).

Only core widgets that exist in ipywidgets 7 and 8 (Colab has shipped both), and every handler calls a
function that a normal notebook cell or a unit test also calls.
"""
from __future__ import annotations

import ipywidgets as w
import matplotlib.pyplot as plt
from IPython.display import display

from . import plots
from .config import budget, sine_config
from .evaluation import sine_eval_set
from .train import meta_train


def sine_trainer(model, init_params, task_seed: int = 7, meta_iters: int | None = None):
    """Sliders for the algorithm, inner steps, inner step size, outer step size and shots; a Train button
    meta-trains with ``meta_train`` (progress bar fed by its callback) and redraws the adaptation figure
    of the same held-out task before and after meta-training."""
    style = {"description_width": "120px"}
    algorithm = w.Dropdown(options=["reptile", "fomaml", "maml", "joint"], value="reptile",
                           description="algorithm", style=style)
    inner_iters = w.IntSlider(value=5, min=2, max=10, description="inner steps k", style=style,
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
    out = w.Output(layout={"height": "330px"})

    def on_algorithm(change):  # Reptile interpolates (step ~1); FOMAML/MAML use Adam (lr ~1e-3)
        meta_step.value = sine_config(change["new"]).meta_step_size

    def on_train(_):
        config = sine_config(algorithm.value, "fast", inner_iters=inner_iters.value, inner_lr=inner_lr.value,
                             meta_step_size=meta_step.value, inner_batch_size=shots.value,
                             meta_iters=iters.value, eval_interval=iters.value)
        progress.max, progress.value = config.meta_iters, 0

        def callback(event):
            if event["event"] == "step" and (event["iteration"] % 10 == 0 or event["iteration"] == config.meta_iters):
                progress.value = event["iteration"]

        with out:
            out.clear_output(wait=True)
            history = meta_train(config, callback=callback)
            task = sine_eval_set(1, shots.value, seed=task_seed)
            fig = plots.sine_comparison(model, {"before meta-training": init_params, algorithm.value: history.params},
                                        task, lr=inner_lr.value)
            display(fig)
            plt.close(fig)

    algorithm.observe(on_algorithm, names="value")
    button.on_click(on_train)
    box = w.VBox([w.HBox([w.VBox([algorithm, inner_iters, inner_lr]), w.VBox([meta_step, shots, iters])]),
                  w.HBox([button, progress]), out])
    box.controls = {"algorithm": algorithm, "inner_iters": inner_iters, "inner_lr": inner_lr,
                    "meta_step_size": meta_step, "shots": shots, "meta_iters": iters}
    box.train_button, box.progress, box.output = button, progress, out
    return box


def episode_explorer(model, phi, adam_state, dataset, num_classes: int = 5, num_tasks: int = 20, seed: int = 0,
                     initial: dict | None = None):
    """Sliders for test-time adaptation steps, inner step size and shots; each change calls
    ``episodes.explore`` (accuracy over ``num_tasks`` fixed tasks + one episode) and redraws the episode's
    before/after predictions with ``episode_plots.plot_adaptation``. ``initial``: an ``explore`` result already
    computed for the default settings (50 steps, 1e-3, 1 shot), shown first instead of recomputing it."""
    from . import episode_plots, episodes

    style = {"description_width": "130px"}
    defaults = (50, 1e-3, 1)  # steps, step size, shots: the settings an ``initial`` result was computed with
    steps = w.IntSlider(value=defaults[0], min=0, max=100, step=5, description="adaptation steps", style=style,
                        continuous_update=False)
    lr = w.FloatLogSlider(value=defaults[1], base=10, min=-4, max=-1.5, description="inner step size", style=style,
                          continuous_update=False)
    shots = w.IntSlider(value=defaults[2], min=1, max=min(5, dataset.per_class - 1), description="shots", style=style,
                        continuous_update=False)

    def show(inner_iters, inner_lr, num_shots):
        if initial is not None and (inner_iters, inner_lr, num_shots) == defaults:
            out = initial
        else:
            out = episodes.explore(model, phi, adam_state, dataset, num_classes, num_shots, inner_iters, inner_lr,
                                   num_tasks=num_tasks, seed=seed)
        if out["accuracy"] is None:
            print("0 steps: no adaptation; the episode below shows the meta-initialisation's own guesses")
        else:
            print(", ".join(f"{m.replace('_', '-')}: {a:.1f} ± {c:.1f}%" for m, (a, c) in out["accuracy"].items())
                  + f"  ({num_tasks} tasks)")
        fig = episode_plots.plot_adaptation(out["episode"], out["result"])
        display(fig)
        plt.close(fig)

    out = w.interactive_output(show, {"inner_iters": steps, "inner_lr": lr, "num_shots": shots})
    box = w.VBox([w.HBox([steps, lr, shots]), out])
    box.controls = {"inner_iters": steps, "inner_lr": lr, "shots": shots}
    box.output = out
    return box


def ablation_runner(cells, datasets, stored: dict | None = None, work_dir=None, meta_iters: int | None = None):
    """A dropdown of a grid's cells and a Train button: re-runs the picked cell on a short schedule
    (``ablations.shorten`` + ``ablations.run``, in ``work_dir``) and draws its learning curve beside the
    stored full-grid curve of the same cell (``stored``: ``ablations.load`` output), with
    ``plots.ablation_curves``."""
    import tempfile

    from . import ablations

    style = {"description_width": "120px"}
    by_name = {c.name: c for c in cells}
    cell = w.Dropdown(options=list(by_name), description="run", style=style)
    iters = w.IntSlider(value=meta_iters or budget(300, 4), min=2, max=3_000, step=2, description="meta-iterations",
                        style=style, continuous_update=False)
    button = w.Button(description="Train", button_style="primary")
    out = w.Output(layout={"height": "360px"})
    work = work_dir or tempfile.mkdtemp(prefix="ablation-")

    def on_train(_):
        with out:
            out.clear_output(wait=True)
            live = ablations.shorten(by_name[cell.value], iters.value, curve_tasks=budget(50, 3),
                                     final_tasks=budget(100, 3))
            record = ablations.run(live, runs_dir=work, results_dir=work, datasets=datasets, show_progress=False)
            curves = {f"{cell.value}, live ({iters.value} iterations)": record}
            if stored and cell.value in stored:
                curves[f"{cell.value}, stored grid"] = stored[cell.value]
            fig, ax = plt.subplots(figsize=(7, 3.6))
            plots.ablation_curves(ax, curves)
            display(fig)
            plt.close(fig)

    button.on_click(on_train)
    box = w.VBox([w.HBox([cell, iters, button]), out])
    box.controls = {"cell": cell, "meta_iters": iters}
    box.train_button, box.output = button, out
    return box
