"""The solution-manifold toy: exact projections, grad 1/2 D^2 = phi - P(phi), the package's meta-steps as weighted
projections, and Reptile converging to the minimiser of the expected squared distance."""
import pytest
import torch

from reptile_edu import manifolds as mf
from reptile_edu import meta

TASKS = mf.demo_curves()
ALPHA = 0.5


def _points(n=20, seed=0):
    return torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 8 - 4


def test_projection_lies_on_the_curve_and_is_the_closest_point():
    angles = torch.linspace(0, 2 * torch.pi, 2001, dtype=torch.float64)
    for phi in _points(10):
        p = mf.project(TASKS, phi)
        assert mf.distance(TASKS, p).max() < 1e-12  # on the curve
        torch.testing.assert_close((phi - p).norm(dim=1), mf.distance(TASKS, phi))
        # circles: no point of a fine parametrisation is closer
        for t in (0, 1):
            ring = TASKS.a[t] + TASKS.r[t] * torch.stack([angles.cos(), angles.sin()], 1)
            assert (ring - phi).norm(dim=1).min() >= mf.distance(TASKS, phi)[t] - 1e-12


def test_gradient_of_half_squared_distance_is_phi_minus_projection():
    model = mf.CurveModel()
    for phi in _points():
        # the hand-written gradient of the task loss 1/2 s D^2 is s (phi - P(phi)) too
        losses, (grad,) = model.loss_and_grads({"phi": phi.expand(len(TASKS), 2)}, *TASKS.batch())
        torch.testing.assert_close(losses, TASKS.scale * mf.half_dist_sq(TASKS, phi))
        torch.testing.assert_close(grad, TASKS.scale[:, None] * (phi - mf.project(TASKS, phi)))
        phi = phi.clone().requires_grad_()
        for t in range(len(TASKS)):
            (grad,) = torch.autograd.grad(mf.half_dist_sq(TASKS, phi)[t], phi)
            torch.testing.assert_close(grad, phi.detach() - mf.project(TASKS, phi.detach())[t])
            # and by central finite differences, independent of autograd
            h, e = 1e-6, torch.eye(2, dtype=torch.float64)
            fd = torch.stack([(mf.half_dist_sq(TASKS, phi.detach() + h * e[i])[t]
                               - mf.half_dist_sq(TASKS, phi.detach() - h * e[i])[t]) / (2 * h) for i in range(2)])
            torch.testing.assert_close(fd, grad, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("algorithm,k", [("reptile", 1), ("reptile", 4), ("joint", 1), ("fomaml", 3), ("maml", 3)])
def test_meta_steps_are_weighted_projections(algorithm, k):
    model, w = mf.CurveModel(), mf.weights(TASKS, algorithm, k, ALPHA)
    for phi in _points(5, seed=1):
        for t in range(len(TASKS)):
            task = TASKS.select(slice(t, t + 1))
            d, _, _ = meta.DISPLACEMENTS[algorithm](model, {"phi": phi}, [task.batch()] * k, "sgd", ALPHA)
            torch.testing.assert_close(d["phi"], w[t] * (mf.project(task, phi)[0] - phi))


def test_minimiser_is_a_stationary_point_and_the_global_minimum():
    phi = mf.minimiser(TASKS)
    assert (phi - mf.project(TASKS, phi).mean(0)).norm() < 1e-10  # grad E[1/2 D^2] = E[phi - P(phi)] = 0
    best = mf.half_dist_sq(TASKS, phi).mean()
    assert (mf.objective(TASKS, _points(5000, seed=2)) >= best - 1e-12).all()


def test_reptile_converges_to_the_minimiser_of_the_expected_squared_distance():
    steep = mf.Curves(TASKS.kind, TASKS.a, TASKS.r, torch.tensor([1.6, 1.8, 1.4], dtype=torch.float64))
    target = mf.minimiser(steep)
    k = 20  # enough inner steps that U^k(phi) = P(phi) to ~1e-10 (1 - alpha * scale <= 0.3)
    path = mf.trajectory("reptile", steep, [0.0, 3.0], k, ALPHA, eps=1.0, iters=40)
    assert (path[-1] - target).norm() < 1e-8
    target = mf.minimiser(TASKS)
    # with few inner steps, Reptile converges to its weighted fixed point instead, and joint training (k = 1)
    # to the minimiser of E[L_tau]: a different point
    for algorithm, k in (("reptile", 2), ("joint", 1)):
        fixed = mf.minimiser(TASKS, mf.weights(TASKS, algorithm, k, ALPHA))
        path = mf.trajectory(algorithm, TASKS, [0.0, 3.0], k, ALPHA, eps=1.0, iters=200)
        assert (path[-1] - fixed).norm() < 1e-8
    assert (mf.minimiser(TASKS, mf.weights(TASKS, "joint", 1, ALPHA)) - target).norm() > 0.3


def test_serial_reptile_with_annealed_steps_ends_near_the_fixed_point():
    """One random task per iteration (Algorithm 1) is SGD on the same objective: noisy, but it gets there."""
    fixed = mf.minimiser(TASKS, mf.weights(TASKS, "reptile", 3, ALPHA))
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        path = mf.trajectory("reptile", TASKS, [0.0, 3.0], 3, ALPHA, eps=0.5, iters=300, serial=True, generator=gen)
        assert (path[0] - fixed).norm() > 4 and (path[-1] - fixed).norm() < 0.3


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="kind"):
        mf.curves(("ellipse", (0, 0), 1.0, 1.0))
    with pytest.raises(ValueError, match="alpha \\* scale"):
        mf.weights(TASKS, "reptile", 2, 1.0)
    with pytest.raises(ValueError, match="algorithm"):
        mf.trajectory("sgd", TASKS, [0.0, 0.0], 2, ALPHA, 1.0, 1)
