"""Widgets are wiring: building them, moving a control and pressing a button runs the tested functions."""
import matplotlib

matplotlib.use("Agg")

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
