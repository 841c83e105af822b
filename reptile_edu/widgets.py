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

import base64
import html
import io
import time

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


def _status(text: str, kind: str = "") -> str:
    """A status line as HTML: an error in red, work in progress in grey."""
    colour = {"error": "#b00020", "busy": "#555555"}.get(kind, "inherit")
    return f'<span style="color:{colour}">{html.escape(text)}</span>'


class _Result:
    """A status line and a figure that are replaced, never appended to; hidden until there is a figure."""

    def __init__(self):
        self.status = w.HTML()
        self.image = w.Image(format="png", layout={"display": "none"})

    def say(self, text: str, kind: str = "") -> None:
        self.status.value = _status(text, kind)

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


def _image_tag(image, caption: str) -> str:
    """A rendered 28x28 image as an inline, pixelated <img> with a caption."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(image[0].numpy()).save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return (f'<figure style="margin:2px;text-align:center"><img src="data:image/png;base64,{data}" width="56" '
            f'height="56" style="image-rendering:pixelated;border:1px solid #ccc"><figcaption style="font-size:11px">'
            f'{html.escape(caption)}</figcaption></figure>')


def _bars(name: str, probabilities) -> str:
    """One initialisation's probabilities over the classes as a bar chart in HTML (readable by a page's tests)."""
    predicted = int(probabilities.argmax())
    rows = []
    for c, p in enumerate(probabilities.tolist()):
        weight = "bold" if c == predicted else "normal"
        rows.append(f'<tr data-class="{c + 1}" data-probability="{p:.6f}" style="font-weight:{weight}">'
                    f'<td>class {c + 1}</td><td style="width:160px"><div style="width:{100 * p:.1f}%;height:12px;'
                    f'background:{"#1f77b4" if c == predicted else "#9ecae1"}"></div></td><td>{100 * p:.1f}%</td></tr>')
    return (f'<div class="reptile-learner" data-learner="{html.escape(name)}" data-predicted="{predicted + 1}" '
            f'style="margin-right:24px"><div><b>{html.escape(name)}</b>: class {predicted + 1}</div>'
            f'<table style="border-collapse:collapse;font-size:12px">{"".join(rows)}</table></div>')


def draw_your_own(learner_sets: dict, classes: int = 3, size: int = 140):
    """Draw a few characters, one box per class, and a test character; Predict adapts every initialisation of
    the chosen ``learner_sets`` entry (``{name: drawing.demo_learners(...)}``) to the drawings with
    ``drawing.classify_all`` and shows each one's probabilities per class as bars, beside the 28x28 images the
    network sees (``drawing.render``). Example fills the boxes from the stored example set (another test
    character each time); Clear empties them. With "predict after every stroke" each finished stroke predicts
    again. A drawing that cannot be used (an empty box, a dot, malformed strokes) is named in the status line."""
    from . import drawing
    from .sketchpad import SketchPad

    style = {"description_width": "130px"}
    checkpoint = w.Dropdown(options=list(learner_sets), description="checkpoint", style=style,
                            layout={"width": "340px"})
    ways = w.IntSlider(value=classes, min=2, max=5, description="classes", style=style)
    shots = w.IntSlider(value=1, min=1, max=4, description="drawings per class", style=style)
    live = w.Checkbox(value=False, description="predict after every stroke", indent=False)
    predict = w.Button(description="Predict", button_style="primary")
    example = w.Button(description="Example")
    clear = w.Button(description="Clear")
    grid = w.HBox(layout={"flex_flow": "row wrap"})
    test_pad = SketchPad(label="test drawing", size=size)
    status, result = w.HTML(), w.HTML()
    pads: list[list] = []
    state = {"example": -1, "quiet": False}  # the example's test class last shown; True while filling boxes
    box = w.VBox([w.HBox([checkpoint, ways]), w.HBox([shots, live]), w.HBox([predict, example, clear]),
                  w.HBox([grid, test_pad], layout={"align_items": "flex-end"}), status, result])
    box.prediction = None

    def say(text: str, kind: str = "") -> None:
        status.value = _status(text, kind)

    def layout(_=None):  # one column of pads per class; existing drawings are kept
        head = learner_sets[checkpoint.value][0].ways
        ways.max = head
        ways.value = min(ways.value, head)
        while len(pads) < ways.value:
            pads.append([])
        for pad in [p for column in pads[ways.value:] for p in column] + [p for c in pads for p in c[shots.value:]]:
            pad.close()  # boxes no longer shown
        del pads[ways.value:]
        for c, column in enumerate(pads):
            del column[shots.value:]
            while len(column) < shots.value:
                number = f" · {len(column) + 1}" if shots.value > 1 else ""
                pad = SketchPad(label=f"class {c + 1}{number}", size=size)
                pad.observe(on_stroke, names="strokes")
                column.append(pad)
        grid.children = [w.VBox(column) for column in pads]
        forget()

    def forget(text: str = "Draw one character per box (or press Example), then press Predict."):
        box.prediction = None
        result.value = ""
        say(text)

    def run():
        support = [[drawing.render(pad.strokes, f"class {c + 1}'s box" + (f" {k + 1}" if len(column) > 1 else ""))
                    for k, pad in enumerate(column)] for c, column in enumerate(pads)]
        query = drawing.render(test_pad.strokes, "the test box")
        say("adapting…", "busy")
        start = time.perf_counter()
        out = {name: p[0] for name, p in drawing.classify_all(learner_sets[checkpoint.value], support, [query]).items()}
        seconds = time.perf_counter() - start
        seen = [_image_tag(image, f"class {c + 1}") for c, column in enumerate(support) for image in column]
        result.value = (f'<div style="display:flex;flex-wrap:wrap;align-items:flex-end">{"".join(seen)}'
                        f'<span style="width:16px"></span>{_image_tag(query, "test")}</div>'
                        f'<div style="font-size:12px;color:#555">what the network sees: each drawing centred, scaled '
                        f'and drawn at 28x28 like Omniglot</div>'
                        f'<div style="display:flex;flex-wrap:wrap;margin-top:8px">'
                        f'{"".join(_bars(name, p) for name, p in out.items())}</div>')
        box.prediction = {name: {"predicted": int(p.argmax()) + 1, "probabilities": p.tolist()}
                          for name, p in out.items()}
        learner = learner_sets[checkpoint.value][0]
        say(f"{len(out)} initialisations adapted in {seconds:.2f} s ({learner.eval_inner_iters} Adam steps of "
            f"{learner.eval_batch_size} each)")

    def safely(work):
        def handler(*_):
            try:
                work()
            except ValueError as exc:
                box.prediction = None
                result.value = ""
                say(str(exc), "error")
        return handler

    def on_stroke(_):
        if live.value and not state["quiet"] and all(p.strokes for column in pads for p in column) and test_pad.strokes:
            safely(run)()

    def fill_example():
        stored = drawing.examples()
        state["example"] = (state["example"] + 1) % min(ways.value, len(stored))
        state["quiet"] = True  # one prediction at the end, not one per box filled
        try:
            for c, column in enumerate(pads):
                for k, pad in enumerate(column):
                    pad.strokes = stored[c]["drawings"][k] if c < len(stored) else []
            test_pad.strokes = stored[state["example"]]["drawings"][-1]
        finally:
            state["quiet"] = False
        missing = max(0, ways.value - len(stored))
        forget(f"Example: the test drawing is another drawing of class {state['example'] + 1}." +
               (f" The example set has {len(stored)} characters: draw the other {missing} yourself." if missing else
                " Press Predict."))
        if live.value and not missing:
            safely(run)()

    def clear_all():
        state["quiet"] = True
        for pad in [p for column in pads for p in column] + [test_pad]:
            pad.strokes = []
        state["quiet"] = False
        forget()

    test_pad.observe(on_stroke, names="strokes")
    for control in (checkpoint, ways, shots):
        control.observe(layout, names="value")
    predict.on_click(safely(run))
    example.on_click(safely(fill_example))
    clear.on_click(safely(clear_all))
    layout()
    box.controls = {"checkpoint": checkpoint, "classes": ways, "drawings_per_class": shots, "live": live}
    box.pads, box.test_pad, box.status, box.result = pads, test_pad, status, result
    box.predict_button, box.example_button, box.clear_button = predict, example, clear
    return box
