"""Widgets used by mouse and keyboard in JupyterLab in Chromium, as a student would: every figure they leave on
screen is whole, a diverging run is shown as a result, and long work shows progress.

Needs Chromium, Playwright and JupyterLab (``.ci/run`` installs them); skips with the reason otherwise.
"""
import base64
import json

import pytest

from tests import browser

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))
NOTEBOOKS = [browser.ROOT / "notebooks" / name for name in
             ("01_sine_wave.ipynb", "04_omniglot.ipynb", "06_inner_loop_ablations.ipynb")]
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
def lab(tmp_path_factory):
    with browser.lab_session(NOTEBOOKS, tmp_path_factory.mktemp("browser")) as session:
        yield session


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
