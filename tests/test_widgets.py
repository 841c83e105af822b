"""Widgets are wiring: building them, moving a control and pressing a button runs the tested functions."""
import matplotlib

matplotlib.use("Agg")

import html  # noqa: E402

import torch  # noqa: E402

from reptile_edu import widgets  # noqa: E402
from reptile_edu.models import SineMLP  # noqa: E402


def test_sine_trainer_trains_when_the_button_is_pressed():
    model = SineMLP()
    box = widgets.sine_trainer(model, model.init_params(torch.Generator().manual_seed(0)), meta_iters=5)
    box.controls["algorithm"].value = "fomaml"  # observer resets the outer step to FOMAML's Adam rate
    assert box.controls["meta_step_size"].value == 1e-3
    box.controls["shots"].value = 6
    box.train_button.click()
    assert box.progress.max == 5 and box.progress.value == 5


def test_ablation_runner_reruns_the_picked_cell_into_its_work_dir(tmp_path, tiny_omniglot):
    from reptile_edu import ablations

    data = tiny_omniglot(classes=12, per_class=20)
    cells = [ablations.AblationRun(c.grid, c.name, c.scale, c.config.replace(inner_batch_size=10, num_shots=2),
                                   c.curve_tasks, c.final_tasks) for c in ablations.grid("fig3", "smoke")[:4]]
    box = widgets.ablation_runner(cells, (data, data), work_dir=tmp_path, meta_iters=4)
    box.controls["cell"].value = "g2"
    box.train_button.click()
    written = list(tmp_path.glob("*.json"))
    assert [p.name for p in written] == ["fig3-live4-g2.json"]
    assert [p["iteration"] for p in ablations.read(written[0])["curve"]] == [0, 1, 2, 3, 4]


def test_a_diverging_run_is_shown_as_its_loss_curve_and_a_note():
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()  # other tests in this process may have left pyplot figures open
    model = SineMLP()
    box = widgets.sine_trainer(model, model.init_params(torch.Generator().manual_seed(0)), meta_iters=50)
    assert box.image.layout.display == "none"  # no empty box before the first training
    box.controls["inner_lr"].value = 10 ** box.controls["inner_lr"].max  # a log slider's max is an exponent
    box.train_button.click()
    assert "diverged at meta-iteration" in box.status.value and "Lower the inner step" in box.status.value
    assert bytes(box.image.value).startswith(b"\x89PNG") and box.image.layout.display is None
    assert not box.train_button.disabled and plt.get_fignums() == open_before  # the widget opened no pyplot figure


def test_k_1_is_offered_to_reptile_and_not_to_the_methods_that_need_a_test_batch():
    model = SineMLP()
    box = widgets.sine_trainer(model, model.init_params(torch.Generator().manual_seed(0)), meta_iters=5)
    k = box.controls["inner_iters"]
    k.value = 1
    box.train_button.click()
    assert "reptile: 5 meta-iterations" in box.status.value
    box.controls["algorithm"].value = "maml"
    assert k.min == 2 and k.value == 2


def _demo(**kw):
    from reptile_edu import drawing

    return widgets.draw_your_own({name: drawing.demo_learners(name) for name in ("omniglot-5way-paper",
                                                                               "omniglot-20way-paper")}, **kw)


def test_draw_your_own_predicts_the_example_and_clear_resets_it():
    box = _demo()
    assert len(box.pads) == 3 and box.prediction is None
    box.example_button.click()  # class boxes and the test box set through their stroke traits
    assert all(pad.strokes for column in box.pads for pad in column) and box.test_pad.strokes
    box.predict_button.click()
    assert list(box.prediction) == ["Reptile", "joint training", "random initialisation"], box.status.value
    for name, out in box.prediction.items():
        assert len(out["probabilities"]) == 3 and abs(sum(out["probabilities"]) - 1) < 1e-6
        assert f'data-learner="{name}" data-predicted="{out["predicted"]}"' in box.result.value
    assert box.prediction["Reptile"]["predicted"] == 1  # the example's test drawing is another drawing of class 1
    assert box.result.value.count("<img") == 4  # what the network sees: three classes and the test drawing
    box.clear_button.click()
    assert box.prediction is None and box.result.value == ""
    assert not box.test_pad.strokes and not any(pad.strokes for column in box.pads for pad in column)


def test_draw_your_own_says_what_is_wrong_with_a_drawing_and_keeps_working():
    box = _demo()
    box.example_button.click()
    box.pads[1][0].strokes = []
    box.predict_button.click()
    assert "class 2's box is empty" in html.unescape(box.status.value) and box.prediction is None
    box.pads[1][0].strokes = [[1, 2, 3]]  # the wrong shape, as a broken front end could send it
    box.predict_button.click()
    assert "stroke 0 must be a non-empty list of [x, y] points" in box.status.value and box.result.value == ""
    box.pads[1][0].strokes = {"not": "strokes"}
    box.predict_button.click()
    assert "must be a list of strokes" in box.status.value
    box.test_pad.strokes = [[[5, 5]]]
    box.example_button.click()
    box.test_pad.strokes = [[[5, 5]]]
    box.predict_button.click()
    assert "the test box is a single dot" in box.status.value
    box.example_button.click()
    box.predict_button.click()
    assert box.prediction is not None  # the same widget predicts again once the drawings are usable


def test_draw_your_own_offers_as_many_classes_as_the_chosen_head_and_more_drawings_per_class():
    box = _demo(classes=3)
    classes, checkpoint = box.controls["classes"], box.controls["checkpoint"]
    assert classes.max == 5
    checkpoint.value = "omniglot-20way-paper"
    assert classes.max == 20
    classes.value = 8
    assert len(box.pads) == 8
    checkpoint.value = "omniglot-5way-paper"
    assert classes.value == 5 and len(box.pads) == 5
    box.controls["drawings_per_class"].value = 2
    assert [len(column) for column in box.pads] == [2] * 5
    box.example_button.click()
    box.predict_button.click()
    assert box.result.value.count("<img") == 11 and len(box.prediction["Reptile"]["probabilities"]) == 5


def test_draw_your_own_predicts_after_every_stroke_when_asked():
    box = _demo()
    box.controls["live"].value = True
    box.example_button.click()  # fills every box: one prediction
    assert box.prediction is not None
    first = box.prediction["Reptile"]["probabilities"]
    box.test_pad.strokes = box.test_pad.strokes + [[[10, 10], [60, 60]]]  # one more stroke in the test box
    assert box.prediction["Reptile"]["probabilities"] != first
