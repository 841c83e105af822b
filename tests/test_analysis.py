"""Paper section 5 checked numerically: Hessian-vector products, the two AvgGradInner forms, the ordering
average, and the fitted leading-order coefficients and O(alpha^2) remainder of MAML, FOMAML and Reptile."""
import itertools
import json
import math

import pytest
import torch

from reptile_edu import analysis, inner
from reptile_edu.config import COMPARED
from reptile_edu.models import stack


@pytest.fixture(scope="module")
def setup():
    return analysis.sine_setup(num_tasks=20, k=4, hidden=16, seed=0)


@pytest.fixture(scope="module")
def study():
    return analysis.expansion_study(ks=(2, 3, 4), alphas=(2.5e-4, 5e-4, 1e-3, 2e-3), num_tasks=20, hidden=16)


def test_theory_coefficients_and_bad_input():
    assert analysis.theory("maml", 3) == (1.0, -4.0)
    assert analysis.theory("fomaml", 3) == (1.0, -2.0)
    assert analysis.theory("reptile", 3) == (3.0, -3.0)
    assert analysis.theory("reptile", 1) == (1.0, 0.0)  # k = 1: joint training, no AvgGradInner term
    with pytest.raises(ValueError, match="alg"):
        analysis.theory("adam", 2)
    with pytest.raises(ValueError, match="k must be >= 2"):
        analysis.theory("maml", 1)
    with pytest.raises(ValueError, match="ks"):
        analysis.expansion_study(ks=(1,))
    with pytest.raises(ValueError, match="batch_size"):
        analysis.sine_setup(2, k=6)


@pytest.mark.parametrize("k", range(1, 8))
def test_balanced_orderings_make_the_first_order_terms_symmetric(k):
    orders = analysis.orderings(k)
    assert all(sorted(o) == list(range(k)) for o in orders) and len(set(orders)) == len(orders) <= 2 * k
    last = [sum(o[-1] == i for o in orders) for i in range(k)]
    assert len(set(last)) == 1  # every minibatch is the test batch equally often (MAML, FOMAML)
    for i, j in itertools.permutations(range(k), 2):  # every ordered pair as often as its reverse (Reptile)
        assert sum(o.index(i) < o.index(j) for o in orders) == sum(o.index(j) < o.index(i) for o in orders)
    if k <= 3:
        assert len(orders) == math.factorial(k)


def test_hessian_vector_product_matches_finite_differences(setup):
    model, phi, batches = setup
    params = stack(phi, 20)
    v = [torch.randn(p.shape, generator=torch.Generator().manual_seed(i), dtype=p.dtype)
         for i, p in enumerate(params.values())]
    hv = analysis.flat(analysis._hvp(model, params, batches[0], v))
    h = 1e-5
    shifted = [{n: p + s * h * d for (n, p), d in zip(params.items(), v)} for s in (1, -1)]
    plus, minus = (analysis.flat(inner.gradients(model, q, *batches[0])[1]) for q in shifted)
    torch.testing.assert_close(hv, (plus - minus) / (2 * h), rtol=1e-6, atol=1e-7)


def test_the_two_avg_grad_inner_forms_agree():
    model, phi, batches = analysis.sine_setup(num_tasks=400, k=2, hidden=16, seed=1)
    h2g1, h1g2, half_grad_dot = analysis.inner_forms(model, phi, batches)
    # task by task, the symmetrised Hessian-vector products ARE half the gradient of g1 . g2
    torch.testing.assert_close((h2g1 + h1g2) / 2, half_grad_dot, rtol=1e-9, atol=1e-9)
    # in expectation (exchangeable minibatches) E[H2 g1] = 1/2 grad E[g1 . g2]: equal within Monte Carlo error
    diff = h2g1 - half_grad_dot
    mc_error = (diff.var(dim=0).sum() / diff.shape[0]).sqrt()
    assert diff.mean(0).norm() < 3 * mc_error
    assert half_grad_dot.mean(0).norm() > 3 * mc_error  # and the signal itself is well above that error


def test_estimates_equal_the_brute_force_pair_average(setup):
    model, phi, batches = setup
    avg_grad, avg_grad_inner = analysis.estimates(model, phi, batches[:3])
    params = stack(phi, 20)
    grads = [inner.gradients(model, params, *b)[1] for b in batches[:3]]
    pairs = [analysis.flat(analysis._hvp(model, params, batches[i], grads[j]))
             for i, j in itertools.permutations(range(3), 2)]
    torch.testing.assert_close(avg_grad_inner, torch.stack(pairs).mean(0), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(avg_grad, torch.stack([analysis.flat(g) for g in grads]).mean(0))


def test_reptile_with_one_minibatch_is_the_joint_training_gradient(setup):
    model, phi, batches = setup
    measured = analysis.measured_update("reptile", model, phi, batches[:1], 0.01)
    joint = analysis.flat(inner.gradients(model, stack(phi, 20), *batches[0])[1]).mean(0)
    torch.testing.assert_close(measured, joint, rtol=1e-9, atol=1e-11)


def test_fitted_coefficients_agree_with_theory_within_their_standard_errors(study):
    rows = [r for r in study["rows"] if r["alpha"] == 2.5e-4]
    assert len(rows) == 9  # 3 algorithms x k = 2, 3, 4
    for r in rows:
        for c in ("a", "b"):
            floor = 1e-9 * abs(r[f"theory_{c}"])  # float64 round-off when the fit is exact
            assert abs(r[f"fit_{c}"] - r[f"theory_{c}"]) <= 3 * r[f"fit_{c}_se"] + floor, r
        # the standard errors are small: this is a sharp check, not a loose one
        assert r["fit_b_se"] < 0.01 * abs(r["theory_b"]), r


def test_the_plain_fit_drifts_linearly_in_alpha(study):
    """Why we extrapolate: the raw fit's b is off by O(alpha), far beyond its own standard error."""
    by = {(r["alg"], r["k"], r["alpha"]): r for r in study["rows"]}
    for alg, k in itertools.product(COMPARED, (2, 3, 4)):
        drift = [by[alg, k, a]["raw_b"] - by[alg, k, a]["theory_b"] for a in (2.5e-4, 5e-4)]
        assert drift[1] / drift[0] == pytest.approx(2, rel=0.1)


def test_the_remainder_is_second_order_in_alpha(study):
    for alg, s in study["slopes"].items():
        assert 1.7 <= s <= 2.3, (alg, s)
    for alg, by_k in study["slopes_by_k"].items():
        assert all(1.7 <= s <= 2.3 for s in by_k.values()), (alg, by_k)


def test_direction_rates_match_finite_differences_of_loss_and_alignment(setup):
    model, phi, batches = setup
    avg_grad_t, avg_grad_inner_t = analysis.estimates(model, phi, batches)
    avg_grad, avg_grad_inner = avg_grad_t.mean(0), avg_grad_inner_t.mean(0)
    update = analysis.measured_update("reptile", model, phi, batches, 0.02)
    rates = analysis.direction_rates(update, avg_grad, avg_grad_inner)
    unit, h = update / update.norm(), 1e-5
    sizes = [p.numel() for p in phi.values()]

    def moved(s):
        return {n: p - s * h * u.reshape(p.shape) for (n, p), u in zip(phi.items(), unit.split(sizes))}

    def mean_loss(p):
        return sum(model.loss(stack(p, 20), *b).mean() for b in batches).item() / len(batches)

    assert (mean_loss(moved(-1)) - mean_loss(moved(1))) / (2 * h) == pytest.approx(rates["loss_decrease"], rel=1e-5)
    fd = (analysis.alignment(model, moved(1), batches) - analysis.alignment(model, moved(-1), batches)) / (2 * h)
    assert fd == pytest.approx(rates["alignment_increase"], rel=1e-5)


def test_expansion_command_ends_with_the_interface_json(capsys):
    from reptile_edu import cli

    assert cli.main(["expansion", "--ks", "2", "3", "--alphas", "1e-3", "2e-3", "--tasks", "4", "--hidden", "8"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out["slopes"]) == {"maml", "fomaml", "reptile"} and len(out["rows"]) == 3 * 2 * 2
    assert {"alg", "k", "alpha", "fit_a", "fit_a_se", "fit_b", "fit_b_se", "theory_a", "theory_b"} <= set(out["rows"][0])
    assert cli.main(["expansion", "--ks", "1"]) == 2  # a user error: one line on stderr, no traceback
    assert "ks must all be >= 2" in capsys.readouterr().err
