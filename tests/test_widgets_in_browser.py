"""Widgets used by mouse and keyboard in JupyterLab in Chromium, as a student would: every figure they leave on
screen is whole, a diverging run is shown as a result, and long work shows progress.

Needs Chromium, Playwright and JupyterLab (``.ci/run`` installs them); skips with the reason otherwise.
"""
import base64
import json

import numpy as np

import pytest

from tests import browser

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))
NOTEBOOKS = [browser.ROOT / "notebooks" / name for name in
             ("01_sine_wave.ipynb", "04_omniglot.ipynb", "06_inner_loop_ablations.ipynb", "09_draw_your_own.ipynb")]
# what the widget's own rendering would draw for the explorer's current settings, decoded here
REFERENCE = """
import base64, io, json
from reptile_edu import evaluation, plots, widgets as _widgets
_c = explorer.controls
_out = evaluation.explore(model, phi, inner_state, test, num_classes=5, num_shots=_c["shots"].value,
                          eval_inner_iters=_c["eval_inner_iters"].value, inner_lr=_c["inner_lr"].value, num_tasks=1,
                          eval_seed=0)
_png = _widgets.png(plots.plot_adaptation(_out["episode"], _out["result"]))
print(json.dumps({"png": base64.b64encode(_png).decode(), "setting": [_c[k].value for k in _c]}))
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    with browser.lab_session(NOTEBOOKS, tmp_path_factory.mktemp("browser")) as lab:
        yield lab


@pytest.fixture
def lab(session):
    """The session's page; a test fails if the page logged an error or threw while it ran."""
    session.console_errors.clear()
    yield session
    assert not session.console_errors, f"browser console errors: {session.console_errors[:5]}"


def _wait_ready(lab, cell, busy_text: str):
    """Until the widget's own work is done: its controls enabled again, nothing 'busy' shown, kernel idle."""
    lab.page.wait_for_timeout(150)
    lab.wait_idle()
    cell.locator(f"text={busy_text}").wait_for(state="detached", timeout=120_000)


def test_every_figure_the_explorer_leaves_on_screen_is_whole(lab):
    lab.open("04_omniglot.ipynb")
    cell = lab.cell("widgets.episode_explorer")
    handles = cell.locator(".noUi-handle")
    assert handles.count() == 3
    checked = []
    for slider in range(3):
        for move in range(5):
            handles.nth(slider).focus()
            lab.page.keyboard.press("ArrowRight" if move % 2 == 0 else "ArrowLeft")
            _wait_ready(lab, cell, "adapting…")
            images = cell.locator(".jp-OutputArea-output img")
            assert images.count() == 1, f"{images.count()} figures on screen after moving slider {slider}"
            shown = browser.image_stats(lab.page, images.first)
            reference = json.loads(lab.kernel(REFERENCE))
            expected = browser.png_stats(base64.b64decode(reference["png"]))
            assert (shown["width"], shown["height"]) == (expected["width"], expected["height"]), (shown, expected)
            assert abs(shown["ink"] - expected["ink"]) <= 0.03 * expected["ink"], (reference["setting"], shown,
                                                                                   expected)
            checked.append(reference["setting"])
    assert len({tuple(s) for s in checked}) > 3  # the sliders really moved
    assert not lab.errors_shown()
    cell.screenshot(path=str(lab.screens / "04-explorer.png"))


def test_a_large_step_size_ends_in_the_divergence_shown_not_a_traceback(lab):
    lab.open("01_sine_wave.ipynb")
    cell = lab.cell("sine_trainer(model, init)")
    cell.locator(".widget-slider", has_text="inner step α").locator(".noUi-handle").focus()
    lab.page.keyboard.press("End")  # the slider's upper end
    cell.locator("button", has_text="Train").click()
    _wait_ready(lab, cell, "training…")
    text = cell.inner_text()
    assert "diverged at meta-iteration" in text and "Lower the inner step" in text, text[-1500:]
    assert "Traceback" not in text and "FloatingPointError" not in text and not lab.errors_shown()
    assert cell.locator(".jp-OutputArea-output img").count() == 1  # the loss curve blowing up
    cell.screenshot(path=str(lab.screens / "01-divergence.png"))


def test_the_ablation_runner_shows_progress_and_blocks_a_second_run(lab):
    lab.open("06_inner_loop_ablations.ipynb")
    cell = lab.cell("widgets.ablation_runner(")
    iterations = cell.locator(".widget-slider", has_text="meta-iterations").locator(".noUi-handle")
    iterations.focus()
    for _ in range(30):
        lab.page.keyboard.press("ArrowRight")
    button = cell.locator("button", has_text="Train")
    button.click()
    seen = []
    for _ in range(600):
        width = cell.locator(".progress-bar").evaluate("bar => bar.style.width")
        seen.append((button.is_disabled(), cell.locator("text=training…").count() > 0, width))
        if not seen[-1][0] and len(seen) > 1:
            break
        lab.page.wait_for_timeout(50)
    during = [s for s in seen if s[0]]
    assert during and all(busy or width for _, busy, width in during), seen[:5]
    assert any(width not in ("", "0%", "100%") for _, _, width in during), f"no partial progress seen: {seen}"
    _wait_ready(lab, cell, "training…")
    assert "live:" in cell.inner_text() and cell.locator(".jp-OutputArea-output img").count() == 1
    assert not lab.errors_shown()
    cell.screenshot(path=str(lab.screens / "06-runner.png"))


def _bars(cell) -> dict:
    """The bars shown: {initialisation: (predicted class, [probability per class])}, read from the page."""
    return {learner.get_attribute("data-learner"): (int(learner.get_attribute("data-predicted")),
                                                    [float(row.get_attribute("data-probability"))
                                                     for row in learner.locator("tr").all()])
            for learner in cell.locator(".reptile-learner").all()}


def test_characters_drawn_with_the_mouse_are_learned_and_predicted(lab):
    lab.open("09_draw_your_own.ipynb")
    cell = lab.cell("widgets.draw_your_own(")
    assert "Reptile" in _bars(cell)  # the example's result is on screen before anyone draws
    cell.get_by_role("button", name="Clear", exact=True).click()
    cell.locator(".reptile-learner").first.wait_for(state="detached")
    examples = json.loads(lab.kernel("import json; print(json.dumps(drawing.examples()))"))
    canvases = cell.locator(".reptile-sketchpad canvas")
    assert canvases.count() == 4  # three classes and the test box
    scale = lab.content_box(canvases.first)["width"] / 200  # the examples are in a 200-pixel canvas
    drawn = [examples[c]["drawings"][0] for c in range(3)] + [examples[1]["drawings"][3]]  # the test: class 2
    for canvas, strokes in zip(canvases.all(), drawn):
        lab.draw(canvas, strokes, scale)
    lab.wait_idle()
    received = json.loads(lab.kernel("print(json.dumps([p.strokes for c in demo.pads for p in c] + "
                                     "[demo.test_pad.strokes]))"))
    assert [len(s) for s in received] == [len(s) for s in drawn]  # every stroke reached Python, none split
    for got, sent in zip(received, drawn):
        for got_stroke, sent_stroke in zip(got, sent):
            assert np.abs(np.asarray(got_stroke[0]) - np.asarray(sent_stroke[0]) * scale).max() <= 0.6
    cell.get_by_role("button", name="Predict", exact=True).click()
    cell.locator("text=initialisations adapted in").wait_for(timeout=60_000)
    bars = _bars(cell)
    assert list(bars) == ["Reptile", "joint training", "random initialisation"]
    for predicted, probabilities in bars.values():
        assert len(probabilities) == 3 and abs(sum(probabilities) - 1) < 1e-4
        assert probabilities[predicted - 1] == max(probabilities)
    assert bars["Reptile"][0] == 2, bars
    seen = cell.locator(".jp-OutputArea-output img[src^='data:image/png']")
    assert seen.count() == 4 and all(img.evaluate("i => i.naturalWidth") == 28 for img in seen.all())
    cell.screenshot(path=str(lab.screens / "09-drawn.png"))

    cell.get_by_text("predict after every stroke").click()  # live: a stroke more in the test box predicts again
    before = bars["Reptile"][1]
    lab.draw(canvases.nth(3), [[(20, 180), (180, 20)]], scale)
    lab.page.wait_for_function("(old) => { const b = document.querySelector('.reptile-learner tr');"
                               " return b && b.getAttribute('data-probability') !== old; }",
                               arg=f"{before[0]:.6f}", timeout=60_000)
    assert _bars(cell)["Reptile"][1] != before

    cell.locator(".reptile-sketchpad-clear").nth(1).click()  # class 2's own clear button
    cell.get_by_role("button", name="Predict", exact=True).click()
    cell.locator("text=class 2's box is empty").wait_for(timeout=60_000)
    assert cell.locator(".reptile-learner").count() == 0 and not lab.errors_shown()
    assert "Traceback" not in cell.inner_text()
    cell.screenshot(path=str(lab.screens / "09-empty-box.png"))
