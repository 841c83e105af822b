"""Several seeds in one run (``train.SeedStates``, ``train --seeds``): each seed's run is what it would be alone.

The equality tests run in float64 and allow ``TOL`` (absolute): batching three runs changes no operation of any
run in principle (the tasks share nothing), and on this code's CPU kernels the difference measured is exactly 0;
the tolerance leaves room for a BLAS that blocks a batched product differently, never for a different algorithm.
"""
import subprocess
import sys

import pytest
import torch

from reptile_edu import checkpoints, runs, train
from reptile_edu.config import Config
from reptile_edu.evaluation import sine_eval_set, sine_probe
from reptile_edu.fast import distributed, graphs

TOL = 1e-12
SEEDS = (0, 1, 2)


def _init(config, seed):
    """Seed ``seed``'s own initialisation, in float64."""
    params = train.build_model(config).init_params(train.set_seed(seed))
    return {k: v.double() for k, v in params.items()}


def together(config, **kw):
    """The seeds trained together, each from its own float64 initialisation."""
    state = train.SeedStates(config, [train.TrainState.new(config.alone(s), _init(config, s)) for s in config.seeds])
    train.meta_train(config, state=state, **kw)
    return state.runs


def alone(config, **kw):
    out = []
    for s in config.seeds:
        state = train.TrainState.new(config.alone(s), _init(config, s))
        train.meta_train(config.alone(s), state=state, **kw)
        out.append(state)
    return out


def _close(a, b):
    return max(((a[k] - b[k]).abs().max().item() for k in a), default=0.0)


def assert_same_runs(batched, single):
    for b, a in zip(batched, single, strict=True):
        assert b.config == a.config and b.iteration == a.iteration
        assert _close(b.phi, a.phi) <= TOL
        assert max(abs(x - y) for x, y in zip(b.history.losses, a.history.losses, strict=True)) <= TOL
        assert [e["iteration"] for e in b.history.evals] == [e["iteration"] for e in a.history.evals]
        for eb, ea in zip(b.history.evals, a.history.evals):
            assert all(abs(eb[k] - ea[k]) <= TOL for k in ea if k not in ("wall_s", "iteration"))
        if a.inner_state is None:
            assert b.inner_state is None
        else:
            assert torch.equal(b.inner_state["t"], a.inner_state["t"])
            assert _close(b.inner_state["v"], a.inner_state["v"]) <= TOL
        outer_a, outer_b = a.outer.state_dict(), b.outer.state_dict()
        if outer_a:
            for sa, sb in zip(outer_a["state"].values(), outer_b["state"].values()):
                assert torch.equal(sa["step"], sb["step"])
                assert (sa["exp_avg_sq"] - sb["exp_avg_sq"]).abs().max() <= TOL
    seeds = [run.config.seed for run in batched]
    assert len(set(seeds)) == len(seeds) and not any(torch.equal(batched[0].phi[k], batched[1].phi[k])
                                                     for k in batched[0].phi)  # the seeds really differ


SINE = {
    "reptile": dict(),
    "fomaml": dict(algorithm="fomaml", inner_iters=3),
    "maml": dict(algorithm="maml", inner_iters=3),
    "fomaml-adam-outer": dict(algorithm="fomaml", inner_iters=3, outer_optimizer="adam", meta_step_size=1e-3),
}


@pytest.mark.parametrize("case", SINE)
def test_three_sine_seeds_together_equal_three_runs_alone(case):
    config = Config(meta_iters=12, meta_batch_size=3, eval_interval=5, seeds=SEEDS, **SINE[case])
    score = sine_probe(sine_eval_set(3), 4, config.inner_lr)  # a float32 evaluation

    def probe(phi, inner_state):
        return score({k: v.float() for k, v in phi.items()}, inner_state)

    assert_same_runs(together(config, eval_set=probe), alone(config, eval_set=probe))


OMNIGLOT = {
    "reptile-adam-carry": dict(),  # the static (CUDA-graph) step, run eagerly on a CPU
    "reptile-faithful": dict(path="faithful"),
    "fomaml": dict(algorithm="fomaml"),
    "maml-sgd": dict(algorithm="maml", inner_optimizer="sgd", inner_lr=0.05),
    "reptile-adam-outer": dict(outer_optimizer="adam", meta_step_size=1e-3),
}


@pytest.mark.parametrize("case", OMNIGLOT)
def test_three_omniglot_seeds_together_equal_three_runs_alone(case, tiny_omniglot, tiny_config):
    config = tiny_config(meta_iters=6, seeds=SEEDS, **OMNIGLOT[case])
    data = tiny_omniglot().to("cpu")
    assert graphs.supports(config) == (case in ("reptile-adam-carry", "fomaml"))
    assert_same_runs(together(config, dataset=data), alone(config, dataset=data))


def test_the_static_step_with_seeds_equals_the_per_iteration_loop(monkeypatch, tiny_omniglot, tiny_config):
    """The CUDA-graph step over three stacked runs, eagerly on a CPU, against ``train.Step``, bit for bit (in
    float32, chunks of 4 inside 10 iterations)."""
    config = tiny_config(meta_iters=10, seeds=SEEDS)
    outcomes = []
    for static in (True, False):
        with monkeypatch.context() as m:
            m.setattr(graphs, "SYNC", 4)
            if not static:
                m.setattr(graphs, "supports", lambda c: False)
            state = train.SeedStates.new(config)
            events = []
            train.meta_train(config, state=state, dataset=tiny_omniglot(), callback=events.append)
            assert [e["iteration"] for e in events] == list(range(1, 11))
            assert all(len(e["losses"]) == 3 for e in events)
            outcomes.append(state.runs)
    for s, l in zip(*outcomes):
        assert s.history.losses == l.history.losses
        assert all(torch.equal(s.phi[k], l.phi[k]) for k in l.phi)
        assert torch.equal(s.inner_state["t"], l.inner_state["t"])
        assert all(torch.equal(s.inner_state["v"][k], l.inner_state["v"][k]) for k in l.inner_state["v"])


def test_a_run_of_seeds_resumes_bit_exactly_from_its_one_checkpoint(tmp_path, tiny_omniglot, tiny_config,
                                                                   killed_run):
    data, config = tiny_omniglot(), tiny_config(seeds=SEEDS)
    whole = runs.train_run(config, tmp_path / "whole", checkpoint_every=4, show_progress=False, dataset=data)
    assert whole["seeds"] == list(SEEDS)
    killed_run(config, data, tmp_path / "cut" / "checkpoint.pt")
    resumed = runs.train_run(config, tmp_path / "cut", resume=True, checkpoint_every=4, show_progress=False,
                             dataset=data)
    assert resumed["resumed_from"] == 4 and resumed["meta_iters_run"] == 12
    a = checkpoints.load_run(tmp_path / "whole" / "checkpoint.pt")["runs"]
    b = checkpoints.load_run(tmp_path / "cut" / "checkpoint.pt")["runs"]
    assert [r["config"]["seed"] for r in a] == list(SEEDS)
    for ra, rb in zip(a, b, strict=True):
        assert all(torch.equal(ra["phi"][k], rb["phi"][k]) for k in ra["phi"])
        assert all(torch.equal(ra["inner_state"]["v"][k], rb["inner_state"]["v"][k]) for k in ra["inner_state"]["v"])
        assert torch.equal(ra["history"]["losses"], rb["history"]["losses"])
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == [
        "checkpoint.pt", "curve-seed0.json", "curve-seed1.json", "curve-seed2.json"]
    assert runs.read_curve(tmp_path / "cut" / "curve-seed1.json")["config"]["seed"] == 1


def test_eval_and_export_treat_every_seed_as_its_own_run(tmp_path, monkeypatch, tiny_omniglot, tiny_config):
    """``eval`` scores each seed on the same tasks as that seed's run alone would be scored, and gives the mean and
    the spread across seeds; ``export`` writes one ordinary shipped checkpoint per seed."""
    data, config = tiny_omniglot(), tiny_config(meta_iters=4, seeds=SEEDS)
    runs.train_run(config, tmp_path / "seeds", show_progress=False, dataset=data)
    # each seed's state, saved as a run of its own: in float32 a batched kernel may round differently from a
    # single run's, so the reference is the seed's own weights, not a second training run
    for s, one in zip(SEEDS, checkpoints.load_run(tmp_path / "seeds" / "checkpoint.pt")["runs"], strict=True):
        checkpoints.save_run(tmp_path / f"seed{s}" / "checkpoint.pt", one)
    record = runs.evaluate_source(tmp_path / "seeds", shots=(1,), tasks=6, dataset=data)
    assert record["seed"] == list(SEEDS)
    for entry in record["evaluations"]:
        single = [runs.evaluate_source(tmp_path / f"seed{s}", shots=(1,), tasks=6, dataset=data) for s in SEEDS]
        same = [next(e for e in r["evaluations"] if e["mode"] == entry["mode"]) for r in single]
        assert [p["accuracy"] for p in entry["per_seed"]] == [e["accuracy"] for e in same]
        accuracies = torch.tensor([e["accuracy"] for e in same], dtype=torch.float64)
        assert entry["accuracy"] == pytest.approx(accuracies.mean().item(), abs=1e-4)
        assert entry["seed_std"] == pytest.approx(accuracies.std().item(), abs=1e-4)
    monkeypatch.setattr(checkpoints, "SHIPPED_DIR", tmp_path / "shipped")
    out = runs.export_run(tmp_path / "seeds", "tiny", dataset=data)
    assert [e["checkpoint"] for e in out["exported"]] == [str(tmp_path / "shipped" / f"tiny-seed{s}.pt")
                                                          for s in SEEDS]
    for s in SEEDS:
        shipped = checkpoints.load_shipped(f"tiny-seed{s}")
        alone_run = checkpoints.load_run(tmp_path / f"seed{s}" / "checkpoint.pt")
        assert shipped["config"] == config.alone(s).to_dict()
        assert all(torch.equal(shipped["params"][k], alone_run["phi"][k]) for k in alone_run["phi"])


def test_a_diverging_seed_stops_every_run_and_is_named():
    config = Config(inner_lr=1e6, meta_step_size=1.0, meta_iters=50, seeds=(3, 4))
    with pytest.raises(FloatingPointError, match=r"diverged at meta-iteration \d+ \(seed [34]\)"):
        train.meta_train(config)


@pytest.mark.parametrize("seeds", [(0, 0), (1, -2), ("a",)])
def test_bad_seed_lists_are_refused(seeds):
    with pytest.raises(ValueError, match="seeds must be distinct integers >= 0"):
        Config(seeds=seeds)


def test_seeds_are_not_sharded_over_processes():
    with pytest.raises(ValueError, match="several seeds train in one process"):
        distributed.meta_step("reptile", None, {}, [(torch.zeros(2), torch.zeros(2))], "sgd", 0.1, None, runs=2)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "reptile_edu", *args], cwd=cwd, capture_output=True, text=True,
                          env={**__import__("os").environ, "REPTILE_EDU_SMOKE": "1"})


def test_the_command_line_refuses_bad_seeds_and_another_seed_list_on_resume(tmp_path):
    done = _cli("train", "--preset", "sine", "--seeds", "0", "1", "--meta-iters", "6", "--run-dir", "r", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    for args, message in [(["--seeds"], "expected at least one argument"),
                          (["--seeds", "1", "1"], "seeds must be distinct integers >= 0"),
                          (["--seeds", "0", "-1"], "seeds must be distinct integers >= 0"),
                          (["--seeds", "0", "1", "2", "--resume"], "holds --seeds 0 1, this run asks for --seeds 0 1 2"),
                          (["--resume"], "holds --seeds 0 1, this run asks for one seed (0)")]:
        bad = _cli("train", "--preset", "sine", "--meta-iters", "6", "--run-dir", "r", *args, cwd=tmp_path)
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == 2 and len(lines) == 1 and message in lines[0], bad.stderr
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before  # nothing lost
