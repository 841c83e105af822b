"""The shipped checkpoint reproduces, on CPU, the 20-task accuracy stored when it was exported."""
import pytest

from reptile_edu import checkpoints, evaluation, runs
from reptile_edu.config import Config
from reptile_edu.runs import EXPORT_CHECK
from reptile_edu.train import load_dataset
from tests.fixtures import SHARED_DATA

SHIPPED = sorted(p.stem for p in checkpoints.SHIPPED_DIR.glob("*.pt"))


@pytest.mark.parametrize("name", SHIPPED or ["omniglot-5way"])
def test_shipped_checkpoint_reproduces_its_export_check(name):
    if name not in SHIPPED:
        pytest.skip(f"no shipped checkpoint {name}.pt in {checkpoints.SHIPPED_DIR}")
    shipped = checkpoints.load_shipped(name)
    config = Config(**shipped["config"]).replace(device="cpu")
    root = SHARED_DATA / config.dataset / ("full" if config.dataset == "miniimagenet" else "")  # the whole set
    if not root.is_dir():
        pytest.skip(f"needs the real {config.dataset} data in {root}")
    assert checkpoints.shipped_path(name).stat().st_size < 2**20  # package data stays small
    check = shipped["provenance"]["check"]
    assert {k: check[k] for k in EXPORT_CHECK} == EXPORT_CHECK
    out = runs.evaluate_weights(config, shipped["params"], shipped["inner_state"],
                                load_dataset(config, "test", root), EXPORT_CHECK["shots"],
                                EXPORT_CHECK["tasks"], EXPORT_CHECK["eval_seed"])
    for mode in evaluation.MODES:
        assert out[mode]["accuracy"] == check[mode], mode  # exact: same tasks, same arithmetic on CPU
