"""The shipped checkpoints (``checkpoints.load_shipped``): each reproduces, on CPU, the 20-task accuracy stored when
it was exported, on the real test split from the data root: exactly, unless the check is shown to move with float
rounding alone on this machine."""
import pytest
import torch

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
    test = load_dataset(config, "test", root)
    out = runs.export_check(config, shipped["params"], shipped["inner_state"], test)
    if all(out[mode]["accuracy"] == check[mode] for mode in evaluation.MODES):
        return  # exact: same tasks, same arithmetic
    # Another CPU may round differently (its convolution kernels block the sums differently). A well-conditioned
    # adaptation does not notice; an ill-conditioned one (a joint-training head, near-ties between 20 classes) flips
    # a few predictions. Tell the two apart by changing only the rounding here: without oneDNN's kernels.
    enabled, torch.backends.mkldnn.enabled = torch.backends.mkldnn.enabled, False
    try:
        other = runs.export_check(config, shipped["params"], shipped["inner_state"], test)
    finally:
        torch.backends.mkldnn.enabled = enabled
    moved = [m for m in evaluation.MODES if other[m]["accuracy"] != out[m]["accuracy"]]
    assert moved, f"{name}: the check changed ({out} vs {check}) and does not depend on float rounding"
    for mode in evaluation.MODES:  # rounding-sensitive: the stored check within the task-level 95% CI
        assert abs(out[mode]["accuracy"] - check[mode]) <= out[mode]["ci95"], mode
