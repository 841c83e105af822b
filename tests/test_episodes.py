"""One episode adapted as the official evaluation does; the notebooks' data finder and generated datasets."""
import hashlib
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
    assert episodes.find_data_root("omniglot") is None
    default = tmp_path / "home" / ".cache" / "reptile_edu" / "data" / "omniglot"
    default.mkdir(parents=True)
    assert episodes.find_data_root("omniglot") is None  # an empty folder is no data
    (default / "x.zip").write_bytes(b"")
    assert episodes.find_data_root("omniglot") == default
    env = tmp_path / "env"
    (env / "omniglot").mkdir(parents=True)
    (env / "omniglot" / "y").write_text("")
    monkeypatch.setenv("REPTILE_EDU_DATA", str(env))
    assert episodes.find_data_root("omniglot") == env / "omniglot"


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


def _missing_omniglot(monkeypatch, tmp_path):
    monkeypatch.setenv("REPTILE_EDU_DATA", str(tmp_path / "data"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv("REPTILE_EDU_OFFLINE", raising=False)


def test_missing_omniglot_is_downloaded_into_the_data_root(monkeypatch, tmp_path, capsys):
    from reptile_edu.data import download
    from tests.fixtures import omniglot_members, write_zip

    _missing_omniglot(monkeypatch, tmp_path)
    members = omniglot_members(per_class=2)  # 7 characters: the 1,200/423 split keeps them all for training
    files = {}
    for name in ("images_background", "images_evaluation"):
        served = write_zip(tmp_path / "server" / f"{name}.zip",
                           {k: v for k, v in members.items() if k.startswith(name)})
        files[name] = (served.stat().st_size, hashlib.md5(served.read_bytes()).hexdigest())
    real_download = download.download_omniglot
    monkeypatch.setattr(download, "download_omniglot", lambda root, progress: real_download(
        root, url=(tmp_path / "server").as_uri() + "/{name}.zip", files=files, progress=progress))
    with pytest.warns(UserWarning, match="holds 7 Omniglot characters, not 1,623"):
        root, real, (train,) = episodes.omniglot_or_standin(("train",))
    assert real and root == tmp_path / "data" / "omniglot" and train.num_classes == 4 * 7
    assert "downloading it there" in capsys.readouterr().out


def test_a_failed_download_or_offline_falls_back_in_one_line(monkeypatch, tmp_path, capsys):
    from reptile_edu.data import download

    _missing_omniglot(monkeypatch, tmp_path)
    real_download = download.download_omniglot
    monkeypatch.setattr(download, "download_omniglot", lambda root, progress: real_download(
        root, url=(tmp_path / "nowhere").as_uri() + "/{name}.zip", progress=progress))
    root, real, _ = episodes.omniglot_or_standin()
    out = capsys.readouterr().out
    assert not real and "Download failed (could not download" in out and "stand-in" in out
    assert not (tmp_path / "data" / "omniglot").exists() or not any((tmp_path / "data" / "omniglot").iterdir())
    monkeypatch.setenv("REPTILE_EDU_OFFLINE", "1")
    _, real, _ = episodes.omniglot_or_standin()
    assert not real and "REPTILE_EDU_OFFLINE is set" in capsys.readouterr().out
