"""The meta-step on images (``meta.meta_step``, the engine ``meta_train`` runs): faithful vs vectorised,
Adam-state carry, FOMAML tails, MAML vs finite differences, resume. The sine toy's maths: ``test_meta_sine.py``.

A tiny conv net (3 channels) and a toy dataset whose pixel [0, 0, 0] names the image (``flat_toy``) keep this fast.
"""
import io

import pytest
import torch

from reptile_edu import Config, inner, meta, meta_train
from reptile_edu.models import OmniglotCNN, stack
from reptile_edu.tasks import ImageDataset, training_batches
from reptile_edu.train import TrainState, sample_batches


class Tiny(OmniglotCNN):
    channels = 3
    features = 12


MODEL = Tiny(3)


def flat_toy(num_classes=8, per_class=10, seed=0) -> ImageDataset:
    """Random 28x28 images; pixel [0, 0, 0] = the image's flat id (class * per_class + image)."""
    images = torch.randint(0, 256, (num_classes, per_class, 1, 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(seed))
    images[:, :, 0, 0, 0] = torch.arange(num_classes * per_class, dtype=torch.uint8).reshape(num_classes, per_class)
    return ImageDataset(images, [f"c{i}" for i in range(num_classes)], "toy")


def flat_ids(x):
    """Back from float pixels of ``flat_toy`` examples to their flat ids."""
    return x[..., 0, 0, 0].mul(255).round().long()


def _phi(seed=0):
    return {k: v.double() for k, v in MODEL.init_params(torch.Generator().manual_seed(seed)).items()}


def _batches(T=3, k=3, B=4, seed=1, **kw):
    batches = training_batches(flat_toy(), 3, 4, B, k, T, torch.Generator().manual_seed(seed), **kw)
    return [(x.double(), y) for x, y in batches]


@pytest.mark.parametrize("algorithm", ["reptile", "fomaml", "joint"])
@pytest.mark.parametrize("optimizer, lr", [("adam", 1e-2), ("sgd", 0.05)])
def test_vectorised_equals_faithful_without_state_carry(algorithm, optimizer, lr):
    phi, batches = _phi(), _batches()
    fa = meta.meta_step(algorithm, MODEL, phi, batches, optimizer, lr, path="faithful", carry=False)
    ve = meta.meta_step(algorithm, MODEL, phi, batches, optimizer, lr, path="vectorised", carry=False)
    for k in phi:
        torch.testing.assert_close(fa[0][k], ve[0][k], rtol=0, atol=1e-6)
    torch.testing.assert_close(fa[2], ve[2], rtol=1e-9, atol=1e-9)


def test_faithful_path_carries_adam_state_task_to_task_as_the_official_loop():
    phi, batches = _phi(), _batches()
    state = {"v": {k: torch.full((1, *p.shape), 1e-3, dtype=torch.float64) for k, p in phi.items()},
             "t": torch.tensor([7.0], dtype=torch.float64)}
    d, end, _ = meta.meta_step("reptile", MODEL, phi, batches, "adam", 1e-2, state, path="faithful")
    ref_state, deltas = state, []  # the official train_step: restore phi, keep the optimiser between tasks
    for j in range(3):
        start = stack(phi, 1)
        adapted, ref_state, _ = inner.run(MODEL, start, [(x[j:j + 1], y[j:j + 1]) for x, y in batches], "adam",
                                          1e-2, ref_state)
        deltas.append({k: (adapted[k] - start[k]).detach()[0] for k in phi})
    assert end["t"].item() == 7 + 3 * 3
    for k in phi:
        torch.testing.assert_close(end["v"][k], ref_state["v"][k], rtol=0, atol=0)
        torch.testing.assert_close(d[k], sum(x[k] for x in deltas) / 3, rtol=1e-12, atol=1e-12)
    assert state["t"].item() == 7  # the caller's state is never modified in place


def test_vectorised_carry_keeps_the_faithful_step_count():
    phi, batches = _phi(), _batches()
    _, fa, _ = meta.meta_step("reptile", MODEL, phi, batches, "adam", 1e-2, None, path="faithful")
    _, ve, _ = meta.meta_step("reptile", MODEL, phi, batches, "adam", 1e-2, None, path="vectorised")
    assert fa["t"].tolist() == ve["t"].tolist() == [9.0]
    assert set(ve["v"]) == set(phi) and all(v.shape[0] == 1 for v in ve["v"].values())


@pytest.mark.parametrize("path", ["faithful", "vectorised"])
def test_fomaml_update_is_the_last_step_displacement(path):
    phi, batches = _phi(), _batches()
    d, _, _ = meta.meta_step("fomaml", MODEL, phi, batches, "sgd", 0.05, path=path)
    params = stack(phi, 3)  # plain autograd SGD loop
    for x, y in batches[:-1]:
        grads = torch.autograd.grad(MODEL.loss(params, x, y).sum(), list(params.values()))
        params = {k: (p - 0.05 * g).detach().requires_grad_() for (k, p), g in zip(params.items(), grads)}
    last = torch.autograd.grad(MODEL.loss(params, *batches[-1]).sum(), list(params.values()))
    for k, g in zip(phi, last):
        torch.testing.assert_close(d[k], -0.05 * g.mean(dim=0), rtol=1e-10, atol=1e-12)


def test_separate_tail_batches_never_overlap_earlier_ones():
    config = Config(dataset="omniglot", num_classes=3, train_shots=5, inner_batch_size=4, inner_iters=4,
                    meta_batch_size=6, foml_tail=2, algorithm="fomaml", inner_optimizer="adam", inner_lr=1e-3)
    batches = sample_batches(config, torch.Generator().manual_seed(0), flat_toy())
    assert len(batches) == 4 and batches[-1][0].shape[1] == 3 * 2
    for t in range(6):
        early = set(torch.cat([flat_ids(x[t]) for x, _ in batches[:-1]]).tolist())
        tail = set(flat_ids(batches[-1][0][t]).tolist())
        assert len(tail) == 6 and not early & tail
        assert len(early) <= 3 * 3  # the first k-1 steps cycle over the remaining (5 - 2) shots per class


def test_train_shots_not_shots_make_the_mini_dataset_and_replacement_repeats_across_batches():
    config = Config(dataset="omniglot", num_classes=3, num_shots=1, train_shots=4, inner_batch_size=5,
                    inner_iters=6, meta_batch_size=4, replacement=True)
    batches = sample_batches(config, torch.Generator().manual_seed(0), flat_toy())
    for t in range(4):
        seen = torch.cat([flat_ids(x[t]) for x, _ in batches])
        assert len(set(seen.tolist())) <= 12 and len(seen) == 30  # 3 classes x 4 train-shots
        assert all(len(set(flat_ids(x[t]).tolist())) == 5 for x, _ in batches)  # no repeats within a batch


@pytest.mark.parametrize("path", ["faithful", "vectorised"])
def test_reptile_k1_is_one_sgd_step_scaled_by_the_meta_step(path):
    phi, batches = _phi(), _batches(k=1)
    d, _, _ = meta.meta_step("reptile", MODEL, phi, batches, "sgd", 0.05, path=path)
    params = stack(phi, 3)
    grads = torch.autograd.grad(MODEL.loss(params, *batches[0]).sum(), list(params.values()))
    eps = 0.3
    for k, g in zip(phi, grads):
        torch.testing.assert_close(phi[k] + eps * d[k], phi[k] - eps * 0.05 * g.mean(dim=0), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("path", ["faithful", "vectorised"])
def test_maml_meta_gradient_matches_central_finite_differences(path):
    phi, batches = _phi(), _batches(T=2, k=3, B=3)
    lr = 0.1
    d, _, _ = meta.meta_step("maml", MODEL, phi, batches, "sgd", lr, path=path)

    def objective(p):  # mean over tasks of the test loss after k-1 SGD steps
        params = stack(p, 2)
        for x, y in batches[:-1]:
            params, _ = inner.sgd_step(MODEL, params, (x, y), lr)
        with torch.no_grad():
            return MODEL.loss(params, *batches[-1]).mean()

    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        u = {k: torch.randn(v.shape, generator=gen, dtype=torch.float64) for k, v in phi.items()}
        h = 1e-7  # small: a ReLU kink inside +-h would spoil the difference; float64 keeps the rounding ~1e-9
        fd = (objective({k: phi[k] + h * u[k] for k in phi}) - objective({k: phi[k] - h * u[k] for k in phi})) / (2 * h)
        analytic = sum((-d[k] / lr * u[k]).sum() for k in phi)
        torch.testing.assert_close(analytic, fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", ["faithful", "vectorised"])
def test_resume_from_state_dict_is_bit_exact(path, monkeypatch):
    monkeypatch.setattr("reptile_edu.train.build_model", lambda config: Tiny(config.num_classes))
    config = Config(dataset="omniglot", path=path, num_classes=3, num_shots=1, train_shots=4, inner_batch_size=4,
                    inner_iters=2, meta_batch_size=2, meta_iters=4, inner_optimizer="adam", inner_lr=1e-2,
                    meta_step_size=1.0, eval_interval=100)
    data = flat_toy()
    straight = meta_train(config, dataset=data)
    half = TrainState.new(config)
    meta_train(config, dataset=data, state=half, until=2)  # stopped halfway, same annealing schedule
    assert half.iteration == 2
    buffer = io.BytesIO()
    torch.save(half.state_dict(), buffer)
    buffer.seek(0)
    state = TrainState.from_state_dict(torch.load(buffer, weights_only=True))
    resumed = meta_train(config, dataset=data, state=state)
    assert resumed.losses == straight.losses
    for k in straight.params:
        assert torch.equal(resumed.params[k], straight.params[k])
        assert torch.equal(resumed.inner_state["v"][k], straight.inner_state["v"][k])
    assert torch.equal(resumed.inner_state["t"], straight.inner_state["t"])
