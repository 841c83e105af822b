"""One episode adapted as the official evaluation does; the notebooks' data finder and generated datasets."""
import warnings

import pytest
import torch

from reptile_edu import episodes, evaluation, inner
from reptile_edu.config import CACHE_ENV
from reptile_edu.data.miniimagenet import load_miniimagenet
from reptile_edu.data.omniglot import load_omniglot
from reptile_edu.models import OmniglotCNN, stack


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = episodes.write_tiny_omniglot(tmp_path_factory.mktemp("omni"), characters=6, per_class=6)
    cache = tmp_path_factory.mktemp("cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not 1,623 characters": expected for a generated set
        return load_omniglot(root, "test", benchmark="background-evaluation", cache_dir=cache)


def test_adapt_episode_matches_evaluate_on_the_same_task(tiny):
    model = OmniglotCNN(5)
    phi = model.init_params(torch.Generator().manual_seed(0))
    episode = episodes.sample_episode(tiny, 5, 2, seed=3)
    out = episodes.adapt_episode(model, phi, None, episode, inner_iters=4, batch_size=5, inner_lr=1e-3, seed=1)
    # the same adaptation by hand: the support stream of tasks.support_batches, then inner.run from phi
    sx, sy, qx, qy = episode
    from reptile_edu.tasks import support_batches
    batches = support_batches(sx, sy, 5, 4, torch.Generator().manual_seed(1))
    params, _, losses = inner.run(model, stack(phi, 1), batches, "adam", 1e-3, None)
    preds = evaluation.predict(model, params, sx, qx)
    for mode in evaluation.MODES:
        assert torch.equal(out["after"][mode], preds[mode][0])
        assert out["accuracy_after"][mode] == 100.0 * (preds[mode][0] == qy[0]).double().mean().item()
    assert torch.equal(out["losses"], losses[:, 0])
    assert all(torch.equal(out["params"][k], params[k]) for k in params)
    assert out["probs_after"].shape == (5, 5) and torch.allclose(out["probs_after"].sum(1), torch.ones(5))
    # phi is never modified, and 0 steps leave before == after
    same = episodes.adapt_episode(model, phi, None, episode, inner_iters=0)
    assert all(torch.equal(same["before"][m], same["after"][m]) for m in evaluation.MODES)
    assert all(torch.equal(same["before"][m], out["before"][m]) for m in evaluation.MODES)


def test_adaptation_fits_the_support_set(tiny):
    model = OmniglotCNN(5)
    phi = model.init_params(torch.Generator().manual_seed(0))
    out = episodes.adapt_episode(model, phi, None, episodes.sample_episode(tiny, 5, 3, 0), 30, 5, 1e-2)
    assert out["losses"][-3:].mean() < out["losses"][:3].mean() / 2


def test_explore_and_probe(tiny):
    model = OmniglotCNN(5)
    phi = model.init_params(torch.Generator().manual_seed(0))
    res = episodes.explore(model, phi, None, tiny, 5, 1, inner_iters=2, num_tasks=3)
    assert set(res["accuracy"]) == {"transductive", "non_transductive"} and res["tasks"] == 3
    assert episodes.explore(model, phi, None, tiny, 5, 1, inner_iters=0, num_tasks=3)["accuracy"] is None
    probe = episodes.accuracy_probe(model, tiny, 5, 1, num_tasks=3, inner_iters=2)
    a, b = probe(phi, None), probe(phi, None)
    assert a == b and all(0 <= v <= 100 for v in a.values())
    with pytest.raises(ValueError, match="T = 1"):
        episodes.adapt_episode(model, phi, None, [t.repeat(2, *[1] * (t.dim() - 1))
                                                  for t in episodes.sample_episode(tiny, 5, 1)])


def test_tiny_miniimagenet_loads_through_the_real_loader(tmp_path):
    root = episodes.write_tiny_miniimagenet(tmp_path / "mini", classes=(3, 2, 5), per_class=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_miniimagenet(root, "test", cache_dir=tmp_path / "cache")
    assert ds.images.shape == (5, 4, 3, 84, 84)


def test_find_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("REPTILE_EDU_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    deep = tmp_path / "repo" / "notebooks"
    deep.mkdir(parents=True)
    assert episodes.find_data_root("omniglot", deep) is None
    (tmp_path / "shared" / "data" / "omniglot").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "omniglot" / "x.zip").write_bytes(b"")
    assert episodes.find_data_root("omniglot", deep) == tmp_path / "shared" / "data" / "omniglot"
    env = tmp_path / "env"
    (env / "omniglot").mkdir(parents=True)
    (env / "omniglot" / "y").write_text("")
    monkeypatch.setenv("REPTILE_EDU_DATA", str(env))
    assert episodes.find_data_root("omniglot", deep) == env / "omniglot"


def test_episode_explorer_redraws_on_slider_change(tiny, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from reptile_edu import widgets
    calls = []
    real = episodes.explore
    monkeypatch.setattr(episodes, "explore", lambda *a, **k: calls.append(a[6]) or real(*a, **k))
    model = OmniglotCNN(5)
    box = widgets.episode_explorer(model, model.init_params(torch.Generator().manual_seed(0)), None, tiny,
                                   num_tasks=2)
    box.controls["inner_iters"].value = 5
    assert calls[-1] == 5


def test_live_training_callback_records_and_draws(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from reptile_edu import episode_plots
    cb = episode_plots.live_training(4, every=2)
    for i in range(1, 5):
        cb({"event": "step", "iteration": i, "loss": float(10 - i), "meta_step": 1.0})
    cb({"event": "eval", "iteration": 4, "transductive": 50.0, "non_transductive": 40.0})
    assert cb.losses == [9.0, 8.0, 7.0, 6.0] and cb.evals == [(4, 40.0)]


def test_omniglot_or_standin_falls_back_to_a_generated_set(monkeypatch, tmp_path):
    monkeypatch.setattr(episodes, "find_data_root", lambda dataset: None)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the stand-in's expected subset warning is silenced, nothing else raised
        root, real, (train, test) = episodes.omniglot_or_standin()
    assert not real and root.name == "omniglot" and (root / "images_background.zip").is_file()
    assert train.num_classes == 2 * 8 * 4 and test.num_classes == 8  # background (rotated) / evaluation alphabets
