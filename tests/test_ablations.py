"""The section-6 ablation grids: Figure 3's runs combine exactly the inner gradients they name, Figure 4's
tails overlap (or not) exactly as designed, and a grid cell is a resumable run that writes its results file."""
import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from reptile_edu import ablations, checkpoints, presets, runs
from reptile_edu.tasks import training_batches
from reptile_edu.train import TrainState, build_model, meta_train, sample_batches
from reptile_edu import set_seed


def tiny_fig3(variant):
    """The Figure 3 preset on 28x28 images, shrunk only in the task's size (2 shots, batches of 10)."""
    k = presets.FIG3_VARIANTS[variant][0]
    return presets.preset("omniglot-fig3", "smoke", variant, num_shots=2, train_shots=2 * k, inner_batch_size=10,
                          meta_iters=1)


@pytest.mark.parametrize("variant", list(presets.FIG3_VARIANTS))
def test_fig3_meta_update_is_the_named_combination_of_inner_gradients(variant, tiny_omniglot):
    """One meta-iteration of the real trainer moves phi by exactly -sum_i w_i g_i, the g_i taken along the
    SGD trajectory on the same minibatches (float64), w = ``combination(variant)``: sum, average or last."""
    config, data = tiny_fig3(variant), tiny_omniglot(classes=6, per_class=8)
    model = build_model(config)
    phi0 = {k: v.double() for k, v in model.init_params(torch.Generator().manual_seed(1)).items()}
    state = TrainState.new(config, phi0)
    generator = torch.Generator()
    generator.set_state(state.generator.get_state())
    batches = sample_batches(config, generator, data)
    meta_train(config, state=state, dataset=data)
    theta, grads = {k: v.clone()[None] for k, v in phi0.items()}, []
    for x, y in batches:
        leaf = {k: v.clone().requires_grad_() for k, v in theta.items()}
        g = torch.autograd.grad(model.loss(leaf, x.double(), y).sum(), list(leaf.values()))
        grads.append(dict(zip(leaf, g)))
        theta = {k: theta[k] - config.inner_lr * gk for k, gk in zip(leaf, g)}
    weights = ablations.combination(variant, config.inner_lr)
    assert len(weights) == len(batches) == config.inner_iters
    for k in phi0:
        expected = phi0[k] - sum(w * g[k][0] for w, g in zip(weights, grads))
        torch.testing.assert_close(state.phi[k], expected, rtol=1e-10, atol=1e-12)


def test_fig3_combination_weights():
    assert ablations.combination("g1+g2", 1.0) == [0.25, 0.25]
    assert ablations.combination("(g1+g2+g3+g4)/4", 1.0) == [0.0625] * 4
    assert ablations.combination("g3", 1.0) == [0.0, 0.0, 0.25]
    with pytest.raises(ValueError, match="one of"):
        ablations.combination("g5")


def _overlaps(config, toy, ids):
    """Per task of the ``toy`` set: does the last inner minibatch share an example with the earlier ones?"""
    batches = training_batches(toy(), config.num_classes, config.train_shots, config.inner_batch_size,
                               config.inner_iters, 6, set_seed(0), config.replacement, config.foml_tail)
    earlier = ids(torch.cat([x for x, _ in batches[:-1]], dim=1))
    last = ids(batches[-1][0])
    return [bool(set(map(tuple, last[t].tolist())) & set(map(tuple, earlier[t].tolist()))) for t in range(6)]


def test_fig4_tails_overlap_exactly_as_designed(toy, ids):
    """Separate tail: never, and it is exactly one inner batch. Shared tail, cycling: exactly when the k batches
    exceed one epoch of the 50-example mini-dataset (k * batch > 50). With replacement: independent draws."""
    cells = ablations.grid("fig4", "paper")
    assert len(cells) == 4 * (len(ablations.FIG4_INNER_ITERS["paper"]) + len(ablations.FIG4_BATCHES["paper"]) - 1)
    for cell in cells:
        c, overlaps = cell.config, _overlaps(cell.config, toy, ids)
        if cell.name.startswith("fomaml-separate-tail"):
            assert c.foml_tail * c.num_classes == c.inner_batch_size and not any(overlaps)
        elif cell.name.startswith("fomaml-shared-tail "):
            assert all(overlaps) if c.inner_iters * c.inner_batch_size > 50 else not any(overlaps)
    assert any(_overlaps(cells[3].config, toy, ids)) and cells[3].name == "fomaml-shared-tail-replacement k=4"


def test_grids_name_every_cell_once_with_file_safe_names():
    for name in ablations.GRIDS:
        for scale in presets.SCALES:
            cells = ablations.grid(name, scale)
            slugs = [c.slug for c in cells]
            assert len(set(slugs)) == len(slugs) and all("/" not in s and " " not in s and "(" not in s for s in slugs)
    fig3 = ablations.grid("fig3", "laptop")
    assert [c.name for c in fig3] == list(presets.FIG3_VARIANTS) and all(c.config.meta_iters == 3_000 for c in fig3)
    assert [c.config.algorithm for c in fig3 if c.name in ("g2", "g3", "g4")] == ["fomaml"] * 3
    assert fig3[0].config.inner_iters == 1 and fig3[0].config.algorithm == "reptile"  # g1 = joint training
    fig4 = {c.name: c.config for c in ablations.grid("fig4", "laptop")}
    assert (fig4["reptile k=16"].inner_iters, fig4["reptile k=16"].inner_batch_size) == (16, 10)
    assert (fig4["fomaml-separate-tail k=8 batch=20"].foml_tail, fig4["reptile k=8 batch=5"].inner_batch_size) == (4, 5)
    with pytest.raises(ValueError, match="fig3, fig4"):
        ablations.grid("fig5")


def test_a_cell_trains_resumes_and_writes_its_results(tmp_path, tiny_omniglot):
    data = tiny_omniglot(classes=12, per_class=20)
    cell = ablations.grid("fig3", "smoke")[3]  # g2: FOMAML, k = 2
    cell = ablations.AblationRun(cell.grid, cell.name, cell.scale,
                                 cell.config.replace(inner_batch_size=10, num_shots=2, train_shots=4, meta_iters=6,
                                                     eval_interval=2), 3, 4)
    dirs = dict(runs_dir=tmp_path / "runs", results_dir=tmp_path / "results", datasets=(data, data),
                show_progress=False, checkpoint_every=2)  # the last checkpoint comes before the final curve point
    # an interrupted cell: the first 4 iterations (and their curve points) are in the checkpoint
    partial = cell.config.replace(meta_iters=6)
    state = TrainState.new(partial)
    meta_train(partial, state=state, dataset=data, until=4,
               eval_set=ablations._scorer(cell, data, 3))
    cell.run_dir(dirs["runs_dir"]).mkdir(parents=True)
    checkpoints.save_run(cell.run_dir(dirs["runs_dir"]) / runs.CHECKPOINT, state.state_dict())
    record = ablations.run(cell, **dirs)
    assert [p["iteration"] for p in record["curve"]] == [0, 2, 4, 6]
    assert record["meta_iters_run"] == 6 and record["final"]["non-transductive"]["accuracy"] >= 0
    # the same cell run in one go gives the same curve and the same final weights' score
    fresh = ablations.run(cell, **{**dirs, "runs_dir": tmp_path / "fresh", "results_dir": tmp_path / "fresh"})
    assert fresh["curve"] == record["curve"] and fresh["final"] == record["final"]
    on_disk = json.loads(cell.results_path(dirs["results_dir"]).read_text())
    assert on_disk["final"] == record["final"] and on_disk["config"] == cell.config.to_dict()
    assert ablations.load("fig3", "smoke", dirs["results_dir"]) == {cell.name: on_disk}
    # a finished cell is not trained again
    assert ablations.run(cell, **dirs)["train_wall_s"] == record["train_wall_s"]


def test_a_cell_of_several_seeds_writes_each_seed_as_its_own_run_would(tmp_path, tiny_omniglot):
    data = tiny_omniglot(classes=12, per_class=20)
    base = ablations.grid("fig3", "smoke")[3]
    config = base.config.replace(inner_batch_size=10, num_shots=2, train_shots=4, meta_iters=4, eval_interval=2)
    cell = ablations.AblationRun(base.grid, base.name, base.scale, config, 3, 4)
    dirs = dict(results_dir=tmp_path / "results", datasets=(data, data), show_progress=False)
    seed0 = ablations.run(cell, runs_dir=tmp_path / "alone", **dirs)
    together = dataclasses.replace(cell, config=config.replace(seeds=(1, 2)))
    records = ablations.run(together, runs_dir=tmp_path / "together", **dirs)
    assert [r["seed"] for r in records] == [1, 2] and all(r["trained_with_seeds"] == [1, 2] for r in records)
    for r in records:  # each seed's file holds what that seed's cell run alone gives
        alone = dataclasses.replace(cell, config=config.replace(seed=r["seed"]))
        single = ablations.run(alone, runs_dir=tmp_path / "alone", **{**dirs, "results_dir": tmp_path / "single"})
        assert r["curve"] == single["curve"] and r["final"] == single["final"] and r["config"] == single["config"]
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "fig3-smoke-g2-seed1.json", "fig3-smoke-g2-seed2.json", "fig3-smoke-g2.json"]
    assert [r["seed"] for r in ablations.load_seeds("fig3", "smoke", dirs["results_dir"])[cell.name]] == [0, 1, 2]
    assert ablations.load("fig3", "smoke", dirs["results_dir"]) == {cell.name: seed0}
    assert ablations.run(together, runs_dir=tmp_path / "together", **dirs) == records  # finished: not trained again


def test_a_corrupt_results_file_names_the_fix(tmp_path):
    bad = tmp_path / "fig3-laptop-g1.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="re-run its grid cell"):
        ablations.read(bad)


def test_cli_lists_one_command_per_cell_and_refuses_unknown_cells():
    out = subprocess.run([sys.executable, "-m", "reptile_edu", "ablation", "fig4", "--scale", "paper", "--list"],
                         capture_output=True, text=True, check=True)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 24 and all(line.startswith("python -m reptile_edu ablation fig4 --scale paper --only '")
                                    for line in lines)
    assert json.loads(out.stdout.splitlines()[-1])["runs"][0] == "reptile k=4"
    bad = subprocess.run([sys.executable, "-m", "reptile_edu", "ablation", "fig3", "--only", "g9"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: no run ['g9']") and "Traceback" not in bad.stderr
