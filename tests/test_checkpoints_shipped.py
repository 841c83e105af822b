"""The shipped checkpoints (``checkpoints.load_shipped``): each reproduces, on CPU, the 20-task accuracy stored when
it was exported, on the real test split from the data root."""
import pytest

from reptile_edu import checkpoints, evaluation, runs
from reptile_edu.config import Config
from reptile_edu.runs import EXPORT_CHECK
from reptile_edu.train import load_dataset

SHIPPED = sorted(p.stem for p in checkpoints.SHIPPED_DIR.glob("*.pt"))


@pytest.mark.parametrize("name", SHIPPED or ["omniglot-5way"])
def test_shipped_checkpoint_reproduces_its_export_check(name, real_data):
    if name not in SHIPPED:
        pytest.skip(f"no shipped checkpoint {name}.pt in {checkpoints.SHIPPED_DIR}")
    shipped = checkpoints.load_shipped(name)
    config = Config(**shipped["config"]).replace(device="cpu")
    root = real_data(config.dataset) / ("full" if config.dataset == "miniimagenet" else "")  # the whole set
    assert checkpoints.shipped_path(name).stat().st_size < 2**20  # package data stays small
    check = shipped["provenance"]["check"]
    assert {k: check[k] for k in EXPORT_CHECK} == EXPORT_CHECK
    out = runs.export_check(config, shipped["params"], shipped["inner_state"], load_dataset(config, "test", root))
    for mode in evaluation.MODES:
        assert out[mode]["accuracy"] == check[mode], mode  # exact: same tasks, same arithmetic on CPU
