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
