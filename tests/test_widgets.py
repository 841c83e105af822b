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


def test_ablation_runner_reruns_the_picked_cell_into_its_work_dir(tmp_path):
    from reptile_edu import ablations

    from test_runs import tiny_omniglot

    data = tiny_omniglot(classes=12, per_class=20)
    cells = [ablations.AblationRun(c.grid, c.name, c.scale, c.config.replace(inner_batch_size=10, num_shots=2),
                                   c.curve_tasks, c.final_tasks) for c in ablations.grid("fig3", "smoke")[:4]]
    box = widgets.ablation_runner(cells, (data, data), work_dir=tmp_path, meta_iters=4)
    box.controls["cell"].value = "g2"
    box.train_button.click()
    written = list(tmp_path.glob("*.json"))
    assert [p.name for p in written] == ["fig3-live4-g2.json"]
    assert [p["iteration"] for p in ablations.read(written[0])["curve"]] == [0, 1, 2, 3, 4]
