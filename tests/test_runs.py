"""Runs that never lose work: checkpoints, bit-exact resume (a real process killed mid-run), divergence,
shipped checkpoints, results files and the CLI's one-line errors."""
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reptile_edu import checkpoints, presets, results, runs, train
from reptile_edu.fast import graphs
from reptile_edu.config import Config
from reptile_edu.results import read_results, write_results

ROOT = Path(__file__).resolve().parents[1]


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_bit_exactly(tmp_path, tiny_omniglot, tiny_config, killed_run):
    data, config = tiny_omniglot(), tiny_config()
    whole = runs.train_run(config, tmp_path / "whole", checkpoint_every=4, show_progress=False, dataset=data)
    killed_run(config, data, tmp_path / "cut" / "checkpoint.pt")
    resumed = runs.train_run(config, tmp_path / "cut", resume=True, checkpoint_every=4, show_progress=False,
                             dataset=data)
    assert resumed["resumed_from"] == 4 and resumed["meta_iters_run"] == whole["meta_iters_run"] == 12
    a = checkpoints.load_run(tmp_path / "whole" / "checkpoint.pt")
    b = checkpoints.load_run(tmp_path / "cut" / "checkpoint.pt")
    assert _equal(a["phi"], b["phi"])
    assert _equal(a["inner_state"]["v"], b["inner_state"]["v"])
    assert torch.equal(a["inner_state"]["t"], b["inner_state"]["t"])
    assert torch.equal(a["history"]["losses"], b["history"]["losses"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logged_losses_survive_a_checkpoint_exactly_in_either_format(tmp_path, dtype, tiny_omniglot, tiny_config):
    data, config = tiny_omniglot(), tiny_config(meta_iters=3)
    params = {k: v.to(dtype) for k, v in train.build_model(config).init_params(torch.Generator()).items()}
    state = train.TrainState.new(config, params)
    train.meta_train(config, dataset=data, state=state)
    saved = state.state_dict()
    assert saved["history"]["losses"].dtype == dtype and len(saved["history"]["losses"]) == 3
    checkpoints.save_run(tmp_path / "checkpoint.pt", saved)
    as_tensor = checkpoints.load_run(tmp_path / "checkpoint.pt")
    as_list = {**as_tensor, "history": {**as_tensor["history"], "losses": list(state.history.losses)}}  # earlier format
    for s in (as_tensor, as_list):
        assert train.TrainState.from_state_dict(s).history.losses == state.history.losses
    # the training curve reads the same from either format
    curve = runs.curve_record(as_tensor, window=2)
    assert curve == runs.curve_record(as_list, window=2)
    assert curve["iteration"] == 3 and curve["config"] == config.to_dict() and curve["ends"] == [2, 3]


def test_a_run_resumes_as_asked_where_it_began_otherwise(tmp_path, tiny_omniglot, tiny_config):
    """How a run executes (device, cuDNN mode) may change on resume: a checkpoint written on a GPU by a version
    without ``deterministic`` continues on this CPU, to the weights of an uninterrupted run."""
    data, config = tiny_omniglot(), tiny_config()
    whole = runs.train_run(config, tmp_path / "whole", checkpoint_every=4, show_progress=False, dataset=data)
    cut = tmp_path / "cut" / "checkpoint.pt"

    def cut_at_4(event):  # the state at iteration 4, as a GPU run of an older version would have saved it
        if event["event"] == "step" and event["iteration"] == 4:
            saved = event["state"].state_dict()
            saved["config"] = {**{k: v for k, v in saved["config"].items() if k != "deterministic"}, "device": "cuda"}
            checkpoints.save_run(cut, saved)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.meta_train(config, dataset=data, state=train.TrainState.new(config), callback=cut_at_4)
    resumed = runs.train_run(config.replace(deterministic=True), cut.parent, resume=True, show_progress=False,
                             dataset=data)
    assert resumed["resumed_from"] == 4 and whole["meta_iters_run"] == resumed["meta_iters_run"] == 12
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    after = checkpoints.load_run(cut)
    assert after["config"]["device"] == "cpu" and after["config"]["deterministic"] is True
    assert _equal(after["phi"], checkpoints.load_run(tmp_path / "whole" / "checkpoint.pt")["phi"])


@pytest.mark.parametrize("static", [True, False])
def test_ctrl_c_saves_the_run_where_it_stopped(tmp_path, monkeypatch, static, tiny_omniglot, tiny_config):
    """SIGINT between checkpoints: the run saves its whole state at the next iteration (or chunk) boundary and
    stops; resumed, it ends on an uninterrupted run's weights."""
    data, config = tiny_omniglot(), tiny_config(meta_iters=20)
    whole = runs.train_run(config, tmp_path / "whole", checkpoint_every=100, show_progress=False, dataset=data)
    monkeypatch.setattr(graphs, "SYNC", 4)
    if not static:
        monkeypatch.setattr(graphs, "supports", lambda config: False)
    monkeypatch.setattr(runs, "progress_bar", lambda *a: lambda event: event.get("iteration") == 7
                        and signal.raise_signal(signal.SIGINT))
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # pytest-xdist's workers ignore SIGINT
    try:
        with pytest.raises(runs.RunInterrupted, match="--resume"):
            runs.train_run(config, tmp_path / "cut", checkpoint_every=100, dataset=data)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
    stopped = checkpoints.load_run(tmp_path / "cut" / "checkpoint.pt")["iteration"]
    assert stopped == (8 if static else 7)  # the static step stops at the end of its chunk (5..8)
    monkeypatch.setattr(runs, "progress_bar", lambda *a: lambda event: None)
    resumed = runs.train_run(config, tmp_path / "cut", resume=True, checkpoint_every=100, dataset=data)
    assert resumed["resumed_from"] == stopped and resumed["meta_iters_run"] == whole["meta_iters_run"] == 20
    assert _equal(checkpoints.load_run(tmp_path / "cut" / "checkpoint.pt")["phi"],
                  checkpoints.load_run(tmp_path / "whole" / "checkpoint.pt")["phi"])


def test_a_killed_training_process_resumes_to_the_same_weights(tmp_path):
    """A real `python -m reptile_edu train` is killed after its first checkpoints and resumed."""
    env = dict(os.environ, TQDM_DISABLE="1", REPTILE_EDU_SMOKE="0")
    args = [sys.executable, "-m", "reptile_edu", "train", "--preset", "sine", "--meta-iters", "1500",
            "--checkpoint-every", "100"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--run-dir", str(killed)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    history = killed / "curve.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if history.exists() and json.loads(history.read_text())["iteration"] >= 200:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = checkpoints.load_run(killed / "checkpoint.pt")["iteration"]
    assert 0 < done_before < 1500, "the process finished before it could be killed; lengthen the run"
    out = subprocess.run(args + ["--run-dir", str(killed), "--resume"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["resumed_from"] == done_before and report["meta_iters_run"] == 1500
    # the uninterrupted reference runs the same way (same thread count: float rounding must not differ)
    whole = subprocess.run(args + ["--run-dir", str(tmp_path / "whole")], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    a = checkpoints.load_run(killed / "checkpoint.pt")["phi"]
    b = checkpoints.load_run(tmp_path / "whole" / "checkpoint.pt")["phi"]
    assert _equal(a, b)


@pytest.mark.parametrize("path", ["faithful", "vectorised"])
def test_divergence_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, path, tiny_omniglot, tiny_config):
    # NaN pixels from the 7th meta-iteration on: the per-iteration loop (faithful) draws its batches through
    # train.sample_batches, the static step (vectorised, graphs.py) gathers them with tasks.pixels
    config = tiny_config(path=path)
    module, name = (train, "sample_batches") if path == "faithful" else (graphs.tasks, "pixels")
    real, calls = getattr(module, name), {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        out = real(*args, **kwargs)
        if path == "faithful":
            return out if calls["n"] <= 6 else [(x * float("nan"), y) for x, y in out]
        return out if calls["n"] <= 6 * config.inner_iters else out * float("nan")

    monkeypatch.setattr(module, name, poisoned)
    with pytest.raises(FloatingPointError, match="diverged at meta-iteration 6"):
        runs.train_run(config, tmp_path, checkpoint_every=5, show_progress=False, dataset=tiny_omniglot())
    saved = checkpoints.load_run(tmp_path / "checkpoint.pt")
    # the static step reports a chunk's events after it, with the state at its last good iteration (6 done)
    assert saved["iteration"] == (5 if path == "faithful" else 6)
    assert all(torch.isfinite(v).all() for v in saved["phi"].values())
    assert len(saved["history"]["losses"]) == saved["iteration"]


def test_bad_checkpoints_give_clear_errors(tmp_path, tiny_omniglot, tiny_config):
    runs.train_run(tiny_config(), tmp_path / "run", checkpoint_every=6, show_progress=False, dataset=tiny_omniglot())
    good = tmp_path / "run" / "checkpoint.pt"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(checkpoints.CheckpointError, match="corrupt or truncated"):
        checkpoints.load_run(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("<html>not a checkpoint</html>")
    with pytest.raises(checkpoints.CheckpointError, match="corrupt or truncated"):
        checkpoints.load_run(garbage)
    with pytest.raises(checkpoints.CheckpointError, match="another run.*num_classes"):
        checkpoints.load_run(good, tiny_config(num_classes=20).to_dict())
    with pytest.raises(ValueError, match="--resume"):
        runs.train_run(tiny_config(), tmp_path / "run", show_progress=False, dataset=tiny_omniglot())
    with pytest.raises(FileNotFoundError, match="no run checkpoint"):
        runs.train_run(tiny_config(), tmp_path / "empty", resume=True, show_progress=False, dataset=tiny_omniglot())
    assert not list((tmp_path / "run").glob(".*tmp")), "a temporary file was left behind"


def test_export_reads_back_with_weights_only_and_reproduces_its_check(tmp_path, monkeypatch, tiny_omniglot,
                                                                      tiny_config):
    monkeypatch.setattr(checkpoints, "SHIPPED_DIR", tmp_path / "shipped")
    data = tiny_omniglot()
    runs.train_run(tiny_config(), tmp_path / "run", checkpoint_every=12, show_progress=False, dataset=data)
    out = runs.export_run(tmp_path / "run", "tiny", dataset=data)
    assert out["bytes"] < 1_000_000
    shipped = torch.load(out["checkpoint"], weights_only=True)
    assert shipped["provenance"]["meta_iters_run"] == 12
    record = runs.evaluate_source("tiny", shots=[1], tasks=20, dataset=data)
    got = {e["mode"]: e["accuracy"] for e in record["evaluations"]}
    check = shipped["provenance"]["check"]
    assert got["transductive"] == round(check["transductive"], 4)
    assert got["non-transductive"] == round(check["non-transductive"], 4)
    write_results(tmp_path / "r.json", record)
    assert read_results(tmp_path / "r.json")["evaluations"][0]["tasks"] == 20
    (tmp_path / "bad.json").write_text(json.dumps({**record, "evaluations": [{"mode": "x"}]}))
    with pytest.raises(ValueError, match="misses keys"):
        read_results(tmp_path / "bad.json")


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "reptile_edu", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, **(env or {})))


@pytest.mark.parametrize("args, message", [
    (("train", "--preset", "omniglot"), "invalid choice"),
    (("train", "--preset", "omniglot-5way", "--data-root", "/nonexistent/data"), "omniglot"),
    (("eval", "/nonexistent/run"), "no shipped checkpoint"),
    (("eval", "omniglot-5way-paper", "--shots", "0"), "shots and tasks must be >= 1"),
])
def test_cli_user_errors_are_one_line_without_traceback(args, message):
    out = _cli(*args, env={"REPTILE_EDU_CACHE": "/tmp/reptile_edu_test_cache"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr and message in lines[0], out.stderr


def test_cli_refuses_a_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    out = _cli("eval", str(tmp_path))
    assert out.returncode == 2 and "corrupt or truncated" in out.stderr and "Traceback" not in out.stderr


def test_divergence_message_names_the_fix():
    with pytest.raises(FloatingPointError, match="lower inner_lr"):
        train.meta_train(Config(inner_lr=1e6, meta_step_size=1.0, meta_iters=50))


def test_training_curve_summarises_the_logged_losses_by_window(tmp_path, tiny_omniglot, tiny_config):
    import matplotlib
    matplotlib.use("Agg")
    from reptile_edu import plots

    config = tiny_config()
    runs.train_run(config, tmp_path / "run", checkpoint_every=4, show_progress=False, dataset=tiny_omniglot())
    saved = checkpoints.load_run(tmp_path / "run" / "checkpoint.pt")
    losses = saved["history"]["losses"].double()
    curve = runs.curve_record(saved, window=5)  # 12 iterations: windows 1-5, 6-10 and a short one, 11-12
    assert curve["ends"] == [5, 10, 12] and curve["iteration"] == 12 and curve["config"] == config.to_dict()
    for (a, b), mean, low in zip(((0, 5), (5, 10), (10, 12)), curve["mean"], curve["min"]):
        assert mean == pytest.approx(losses[a:b].mean().item(), abs=1e-5)
        assert low == pytest.approx(losses[a:b].min().item(), abs=1e-5)
    written = runs.read_curve(tmp_path / "run")  # train writes curve.json with every checkpoint
    assert written["ends"] == [12] and written["window"] == runs.CURVE_WINDOW
    ax = plots.training_curve(matplotlib.pyplot.figure().gca(), curve)
    means, minima, floor = ax.get_lines()
    assert list(means.get_xdata()) == [5, 10, 12] and list(minima.get_ydata()) == curve["min"]
    assert floor.get_ydata()[0] == pytest.approx(5 * math.log(5))
    (tmp_path / "run" / "curve.json").unlink()  # a run committed mid-schedule ships only its checkpoint
    assert runs.read_curve(tmp_path / "run") == written
    with pytest.raises(FileNotFoundError, match="reptile_edu train"):
        runs.read_curve(tmp_path)
    (tmp_path / "curve.json").write_text("{}")
    with pytest.raises(ValueError, match="not a training curve"):
        runs.read_curve(tmp_path)
    with pytest.raises(ValueError, match="not a training curve"):
        runs.read_curves(tmp_path)


def test_the_stored_curves_are_of_the_paper_runs():
    curves = runs.read_curves(results.find("curves"))
    assert {"omniglot-5way-paper", "omniglot-20way-paper"} <= set(curves)
    for name, curve in curves.items():
        assert curve["config"]["meta_iters"] == presets.PAPER[curve["config"]["preset"]]["meta_iters"], name
        assert curve["ends"][-1] == curve["iteration"] and curve["window"] == runs.CURVE_WINDOW


def test_uniform_prediction_is_the_floor_of_the_expected_logged_loss(tiny_omniglot, tiny_config):
    """Labels are a random permutation per task, so averaged over permutations no prediction beats uniform."""
    classes, batch = 3, 4
    y = torch.tensor([0, 1, 2, 0])
    floor = runs.uniform_loss({"inner_batch_size": batch, "num_classes": classes})
    for logits in (torch.randn(batch, classes, generator=torch.Generator().manual_seed(0)), torch.zeros(batch, classes)):
        expected = sum(torch.nn.functional.cross_entropy(logits, torch.tensor(perm)[y], reduction="sum")
                       for perm in itertools.permutations(range(classes))) / math.factorial(classes)
        assert expected >= floor - 1e-6 and (expected == pytest.approx(floor)) == (not logits.any())
    # and the logged loss is that quantity: an initialisation with a zero output layer logs exactly B * ln N
    config = tiny_config(meta_iters=1)
    params = train.build_model(config).init_params(torch.Generator().manual_seed(0))
    params.update({k: torch.zeros_like(params[k]) for k in ("dense.w", "dense.b")})
    state = train.TrainState.new(config, params)
    train.meta_train(config, dataset=tiny_omniglot(), state=state)
    assert state.history.losses[0] == pytest.approx(runs.uniform_loss(config.to_dict()))
