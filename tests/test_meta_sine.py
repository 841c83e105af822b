"""The meta-steps on the sine toy (``meta.reptile``, ``fomaml``, ``maml``, ``joint`` with ``SineMLP``) and
``meta_train`` over them, against references: plain autograd loops, one SGD step, finite differences."""
import pytest
import torch

from reptile_edu import Config, meta, meta_train
from reptile_edu.data import sine
from reptile_edu.models import SineMLP, stack

MODEL = SineMLP()


def _phi(seed=0, dtype=torch.float64):
    return {k: v.to(dtype) for k, v in MODEL.init_params(torch.Generator().manual_seed(seed)).items()}


def _batches(n_tasks, k, seed=1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    amp, phase = sine.sample_tasks(n_tasks, gen)
    return [(x.to(dtype), y.to(dtype)) for x, y in sine.epoch_batches(amp, phase, 10, k, gen)]


def _reference_sgd(phi, batches, lr, steps):
    """Plain autograd through ``MODEL.forward`` (no hand-written backward); tasks only share the sum."""
    params = stack(phi, batches[0][0].shape[0])
    for x, y in batches[:steps]:
        loss = MODEL.forward(params, x).sub(y).pow(2).mean(dim=(1, 2)).sum()
        grads = torch.autograd.grad(loss, list(params.values()))
        params = {k: (p - lr * g).detach().requires_grad_() for (k, p), g in zip(params.items(), grads)}
    return params


def test_hand_written_backward_matches_autograd():
    phi, (batch,) = _phi(), _batches(3, 1)
    params = stack(phi, 3)
    losses, grads = MODEL.loss_and_grads(params, *batch)
    ref = torch.autograd.grad(MODEL.loss(params, *batch).sum(), list(params.values()))
    torch.testing.assert_close(losses, MODEL.loss(params, *batch).detach())
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_reptile_with_one_step_is_one_sgd_step_scaled_by_the_meta_step():
    phi, batches = _phi(), _batches(1, 1)
    lr, eps = 0.02, 0.3
    d, _, _ = meta.reptile(MODEL, phi, batches, "sgd", lr)
    x, y = batches[0]
    params = {k: v.clone().requires_grad_() for k, v in phi.items()}
    loss = MODEL.forward({k: v[None] for k, v in params.items()}, x).sub(y).pow(2).mean()
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    for k in phi:
        torch.testing.assert_close(phi[k] + eps * d[k], phi[k] - eps * lr * grads[k])


def test_batched_reptile_is_the_mean_of_serial_updates():
    phi, batches = _phi(), _batches(4, 5)
    d_batched, _, _ = meta.reptile(MODEL, phi, batches, "sgd", 0.02)
    serial = [meta.reptile(MODEL, phi, [(x[t:t + 1], y[t:t + 1]) for x, y in batches], "sgd", 0.02)[0]
              for t in range(4)]
    for k in phi:
        torch.testing.assert_close(d_batched[k], torch.stack([s[k] for s in serial]).mean(0))


def test_batched_reptile_with_meta_batch_one_equals_serial_training():
    serial = meta_train(Config(meta_iters=20, meta_batch_size=1))
    batched = meta_train(Config(meta_iters=20, meta_batch_size=1, eval_interval=5))
    for k in serial.params:
        assert torch.equal(serial.params[k], batched.params[k])


def test_reptile_matches_a_plain_autograd_loop():
    phi, batches = _phi(), _batches(1, 5)
    d, _, _ = meta.reptile(MODEL, phi, batches, "sgd", 0.02)
    ref = _reference_sgd(phi, batches, 0.02, 5)
    for k in phi:
        torch.testing.assert_close(phi[k] + d[k], ref[k][0].detach())


def test_fomaml_update_is_the_last_step_gradient():
    phi, batches = _phi(), _batches(1, 5)
    lr = 0.02
    d, _, _ = meta.fomaml(MODEL, phi, batches, "sgd", lr)
    phi_k = _reference_sgd(phi, batches, lr, 4)
    x, y = batches[-1]
    g = torch.autograd.grad(MODEL.forward(phi_k, x).sub(y).pow(2).mean(), list(phi_k.values()))
    for (k, _), gk in zip(phi_k.items(), g):
        torch.testing.assert_close(d[k], -lr * gk[0])


def test_maml_meta_gradient_matches_central_finite_differences():
    phi, batches = _phi(), _batches(2, 4)
    lr = 0.05
    d, _, _ = meta.maml(MODEL, phi, batches, "sgd", lr)
    grad = {k: -v / lr for k, v in d.items()}

    def test_loss(p):
        adapted = _reference_sgd(p, batches, lr, 3)
        return MODEL.loss(adapted, *batches[-1]).mean().item()

    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        v = {k: torch.randn(p.shape, generator=gen, dtype=p.dtype) for k, p in phi.items()}
        h = 1e-5
        plus = test_loss({k: phi[k] + h * v[k] for k in phi})
        minus = test_loss({k: phi[k] - h * v[k] for k in phi})
        fd = (plus - minus) / (2 * h)
        analytic = sum((grad[k] * v[k]).sum().item() for k in phi)
        assert abs(fd - analytic) <= 1e-6 * max(1.0, abs(fd)), (fd, analytic)


def test_maml_differs_from_fomaml_by_the_second_order_term():
    phi, batches = _phi(), _batches(2, 4)
    d_maml, _, _ = meta.maml(MODEL, phi, batches, "sgd", 0.05)
    d_fo, _, _ = meta.fomaml(MODEL, phi, batches, "sgd", 0.05)
    diff = sum((d_maml[k] - d_fo[k]).abs().sum() for k in phi)
    assert diff > 1e-6


def test_joint_training_is_reptile_with_one_step():
    phi, batches = _phi(), _batches(3, 5)
    d_joint, _, _ = meta.joint(MODEL, phi, batches, "sgd", 0.02)
    d_k1, _, _ = meta.reptile(MODEL, phi, batches[:1], "sgd", 0.02)
    for k in phi:
        assert torch.equal(d_joint[k], d_k1[k])


def test_meta_train_is_reproducible_and_reports_through_the_callback():
    events = []
    config = Config(meta_iters=12, eval_interval=4)
    from reptile_edu.evaluation import sine_eval_set, sine_probe
    a = meta_train(config, callback=events.append, eval_set=sine_probe(sine_eval_set(5)))
    b = meta_train(config)
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k])
    steps = [e for e in events if e["event"] == "step"]
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["iteration"] for e in steps] == list(range(1, 13))
    assert [e["iteration"] for e in evals] == [0, 4, 8, 12]
    assert steps[0]["meta_step"] == pytest.approx(0.1) and steps[-1]["meta_step"] == pytest.approx(0.1 * 1 / 12)
    assert len(a.losses) == 12


def test_divergence_stops_with_a_clear_message():
    with pytest.raises(FloatingPointError, match="diverged"):
        meta_train(Config(inner_lr=1e6, meta_step_size=1.0, meta_iters=50))
