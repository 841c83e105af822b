"""One episode adapted as the official evaluation does (``evaluation.adapt_episode``, ``explore``,
``accuracy_probe``) and the test-time widget over it."""
import warnings

import pytest
import torch

from reptile_edu import evaluation, inner
from reptile_edu.data.omniglot import load_omniglot
from reptile_edu.data.standins import write_tiny_omniglot
from reptile_edu.models import OmniglotCNN, stack


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = write_tiny_omniglot(tmp_path_factory.mktemp("omni"), characters=6, per_class=6)
    cache = tmp_path_factory.mktemp("cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not 1,623 characters": expected for a generated set
        return load_omniglot(root, "test", benchmark="background-evaluation", cache_dir=cache)


def test_adapt_episode_matches_evaluate_on_the_same_task(tiny):
    model = OmniglotCNN(5)
    phi = model.init_params(torch.Generator().manual_seed(0))
    episode = evaluation.sample_episode(tiny, 5, 2, eval_seed=3)
    out = evaluation.adapt_episode(model, phi, None, episode, eval_inner_iters=4, eval_batch_size=5, inner_lr=1e-3,
                                   eval_seed=1)
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
    same = evaluation.adapt_episode(model, phi, None, episode, eval_inner_iters=0)
    assert all(torch.equal(same["before"][m], same["after"][m]) for m in evaluation.MODES)
    assert all(torch.equal(same["before"][m], out["before"][m]) for m in evaluation.MODES)


def test_adaptation_fits_the_support_set(tiny):
    model = OmniglotCNN(5)
    phi = model.init_params(torch.Generator().manual_seed(0))
    out = evaluation.adapt_episode(model, phi, None, evaluation.sample_episode(tiny, 5, 3, 0),
                                   eval_inner_iters=30, eval_batch_size=5, inner_lr=1e-2)
    assert out["losses"][-3:].mean() < out["losses"][:3].mean() / 2


def test_explore_and_probe(tiny):
    model = OmniglotCNN(5)
    phi = model.init_params(torch.Generator().manual_seed(0))
    res = evaluation.explore(model, phi, None, tiny, num_classes=5, num_shots=1, eval_inner_iters=2, num_tasks=3)
    assert set(res["accuracy"]) == {"transductive", "non-transductive"} and res["tasks"] == 3
    assert evaluation.explore(model, phi, None, tiny, num_classes=5, num_shots=1, eval_inner_iters=0,
                              num_tasks=3)["accuracy"] is None
    probe = evaluation.accuracy_probe(model, tiny, num_classes=5, num_shots=1, num_tasks=3, eval_batch_size=5,
                                      eval_inner_iters=2, inner_lr=1e-3)
    a, b = probe(phi, None), probe(phi, None)
    assert a == b and all(0 <= v <= 100 for v in a.values())
    with pytest.raises(ValueError, match="T = 1"):
        evaluation.adapt_episode(model, phi, None, [t.repeat(2, *[1] * (t.dim() - 1))
                                                  for t in evaluation.sample_episode(tiny, 5, 1)])


def test_episode_explorer_redraws_on_slider_change(tiny, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from reptile_edu import widgets
    calls = []
    real = evaluation.explore
    monkeypatch.setattr(evaluation, "explore", lambda *a, **k: calls.append(k["eval_inner_iters"]) or real(*a, **k))
    model = OmniglotCNN(5)
    box = widgets.episode_explorer(model, model.init_params(torch.Generator().manual_seed(0)), None, tiny,
                                   num_tasks=2)
    box.controls["eval_inner_iters"].value = 5
    assert calls[-1] == 5
