"""Paper section 5, checked numerically: AvgGrad, AvgGradInner and the leading-order meta-gradients.

Setting (docs/paper.md §1.6): plain SGD with step alpha on k minibatches L_1..L_k of one task, phi_1 = phi.
With g_bar_i = L_i'(phi) and H_bar_i = L_i''(phi), to first order in alpha (docs/paper.md §1.6):
    E[g_MAML]    = AvgGrad - 2(k-1) alpha AvgGradInner
    E[g_FOMAML]  = AvgGrad -  (k-1) alpha AvgGradInner
    E[g_Reptile] = k AvgGrad - k(k-1)/2 alpha AvgGradInner,      g_Reptile = (phi_1 - phi_{k+1}) / alpha
where AvgGrad = E[g_bar_1] and AvgGradInner = E[H_bar_2 g_bar_1] = 1/2 grad E[g_bar_1 . g_bar_2].

How we measure it, and why:
  * The measured updates come from ``meta.DISPLACEMENTS`` (the package's own Reptile, FOMAML and
    second-order MAML, which run ``inner.run``): g = -d / alpha. Nothing here re-implements the inner loop.
  * float64 throughout, and common random numbers: the same tasks, minibatches and phi feed the measured
    updates (for every algorithm, k and alpha) and the AvgGrad / AvgGradInner estimates.
  * Each task's update is averaged over orderings of its k minibatches. The sample estimates of AvgGrad and
    AvgGradInner are symmetric in the minibatches, but MAML's and FOMAML's update depends on which one comes
    last and Reptile's second-order term on which comes first; without the average, that sampling noise
    swamps the alpha term. We use a *balanced* set of 2k orderings (the cyclic shifts of 1..k and their
    reverses; all k! permutations for k <= 3) instead of many random permutations: every minibatch is last
    equally often and every ordered pair (i before j) occurs as often as (j before i), which is all the
    first-order terms depend on, so the ordering average is exact at first order with 2k orderings, not k!.
    Then measured - predicted is exactly the O(alpha^2) remainder, task by task.
  * Hessians are never formed: H v comes from double backward through ``inner.gradients(create_graph=True)``.
"""
from __future__ import annotations

import math

import torch

from . import inner, meta
from .config import COMPARED
from .data import sine
from .models import Params, SineMLP, stack



def theory(alg: str, k: int) -> tuple[float, float]:
    """(a, b) in E[g_alg] = a AvgGrad + b alpha AvgGradInner + O(alpha^2) (docs/paper.md §1.6)."""
    if k < 1:
        raise ValueError(f"k must be >= 1 (got {k})")
    coefficients = {"maml": (1.0, -2.0 * (k - 1)), "fomaml": (1.0, -(k - 1.0)), "reptile": (float(k), -k * (k - 1) / 2)}
    if alg not in coefficients:
        raise ValueError(f"alg must be one of {', '.join(COMPARED)} (got {alg!r})")
    if alg != "reptile" and k < 2:
        raise ValueError(f"k must be >= 2 for {alg}: k-1 inner steps, then the test minibatch")
    return coefficients[alg]


def orderings(k: int) -> list[tuple[int, ...]]:
    """The balanced orderings: cyclic shifts of 0..k-1 and their reverses (2k of them; k! for k <= 3)."""
    shifts = [tuple((s + i) % k for i in range(k)) for s in range(k)]
    return list(dict.fromkeys(shifts + [o[::-1] for o in shifts]))


def flat(tensors) -> torch.Tensor:
    """Per-task tensors (a params-ordered dict or list, each [T, ...]) -> one [T, P] matrix."""
    values = tensors.values() if isinstance(tensors, dict) else tensors
    return torch.cat([t.reshape(t.shape[0], -1) for t in values], dim=1)


def sine_setup(num_tasks: int, k: int, batch_size: int = 10, hidden: int = 64, seed: int = 0):
    """The model, a point phi (a seeded initialisation) and k minibatches of ``num_tasks`` sine tasks, float64.

    Minibatches are disjoint cuts of one shuffled pass over the 50-point grid (exchangeable, as the analysis
    assumes); taking the first k of them gives common random numbers across k.
    """
    if batch_size * k > sine.X_GRID.shape[0]:
        raise ValueError(f"batch_size * k must be <= {sine.X_GRID.shape[0]} grid points (got {batch_size} * {k})")
    gen = torch.Generator().manual_seed(seed)
    model = SineMLP(hidden)
    phi = {n: p.double() for n, p in model.init_params(gen).items()}
    amplitude, phase = sine.sample_tasks(num_tasks, gen)
    batches = [(x.double(), y.double()) for x, y in sine.epoch_batches(amplitude, phase, batch_size, k, gen)]
    return model, phi, batches


def _hvp(model, params: Params, batch, v) -> tuple:
    """H v per task for the loss on ``batch`` at ``params`` (stacked leaves); v is a params-ordered list."""
    _, g = inner.gradients(model, params, *batch, create_graph=True)
    return torch.autograd.grad(g, list(params.values()), grad_outputs=list(v))


def estimates(model, phi: Params, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task sample AvgGrad and AvgGradInner, [T, P] each, symmetric in the minibatches:
    mean_i g_bar_i and mean over ordered pairs i != j of H_bar_i g_bar_j = (1/(k(k-1))) sum_i H_bar_i (S - g_bar_i),
    with S = sum_j g_bar_j (k Hessian-vector products per task, not k(k-1))."""
    k = len(batches)
    if k < 2:
        raise ValueError(f"AvgGradInner needs k >= 2 minibatches per task (got {k})")
    params = stack(phi, batches[0][0].shape[0])
    grads = [inner.gradients(model, params, *b)[1] for b in batches]
    total = [sum(parts) for parts in zip(*grads)]
    inner_sum = None
    for batch, g in zip(batches, grads):
        hv = flat(_hvp(model, params, batch, [s - gi for s, gi in zip(total, g)]))
        inner_sum = hv if inner_sum is None else inner_sum + hv
    return flat(total) / k, inner_sum / (k * (k - 1))


def inner_forms(model, phi: Params, batches) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two forms of AvgGradInner per task, [T, P], from minibatches 1 and 2:
    H_bar_2 g_bar_1 (a Hessian-vector product), H_bar_1 g_bar_2, and 1/2 grad(g_bar_1 . g_bar_2) (double
    backward of a dot product). Exchangeability makes all three equal in expectation; and per task
    1/2 (H_bar_2 g_bar_1 + H_bar_1 g_bar_2) = 1/2 grad(g_bar_1 . g_bar_2) exactly."""
    if len(batches) < 2:
        raise ValueError(f"need at least 2 minibatches per task (got {len(batches)})")
    params = stack(phi, batches[0][0].shape[0])
    g1 = inner.gradients(model, params, *batches[0])[1]
    g2 = inner.gradients(model, params, *batches[1])[1]
    h2g1, h1g2 = flat(_hvp(model, params, batches[1], g1)), flat(_hvp(model, params, batches[0], g2))
    _, g1_graph = inner.gradients(model, params, *batches[0], create_graph=True)
    _, g2_graph = inner.gradients(model, params, *batches[1], create_graph=True)
    dot = sum((a * b).sum() for a, b in zip(g1_graph, g2_graph))
    half_grad_dot = flat(torch.autograd.grad(dot, list(params.values()))) / 2
    return h2g1, h1g2, half_grad_dot


def permuted(batches, orders) -> list:
    """Each task once per ordering of its minibatches, stacked along the task dimension (ordering-major)."""
    return [tuple(torch.cat([batches[o[i]][j] for o in orders]) for j in range(2)) for i in range(len(batches))]


def measured_update(alg: str, model, phi: Params, batches, alpha: float) -> torch.Tensor:
    """E[g_alg] over the tasks and the balanced orderings, [P]: the package's own meta-step, g = -d / alpha."""
    theory(alg, len(batches))  # validates alg and k
    rows = permuted(batches, orderings(len(batches)))
    d, _, _ = meta.DISPLACEMENTS[alg](model, phi, rows, "sgd", alpha)
    return -flat({n: v[None] for n, v in d.items()})[0] / alpha


def fit(measured: torch.Tensor, avg_grad: torch.Tensor, avg_grad_inner: torch.Tensor, alpha: float) -> dict:
    """Least squares over the P coordinates: measured = a AvgGrad + b alpha AvgGradInner + residual,
    with the classical standard errors sigma^2 (X^T X)^-1, sigma^2 = RSS / (P - 2). Keys a, a_se, b, b_se."""
    X = torch.stack([avg_grad, alpha * avg_grad_inner], dim=1)
    coef = torch.linalg.lstsq(X, measured[:, None]).solution[:, 0]
    rss = (measured - X @ coef).square().sum()
    se = (rss / (X.shape[0] - 2) * torch.linalg.inv(X.T @ X)).diagonal().sqrt()
    return {"a": coef[0].item(), "a_se": se[0].item(), "b": coef[1].item(), "b_se": se[1].item()}


def extrapolate(at_alpha: dict, at_2alpha: dict) -> dict:
    """The leading-order coefficients, alpha -> 0, from fits at alpha and 2 alpha (Richardson extrapolation).

    Why: the O(alpha^2) remainder is not noise but a fixed direction partly along the regressors, so the plain
    fit at alpha is biased: b by O(alpha), a by O(alpha^2) (the remainder divided by the regressor's alpha).
    With common random numbers the bias is many standard errors even at alpha = 1e-3, while the fit converges
    to theory linearly (b) or quadratically (a). Extrapolating b as 2 b(alpha) - b(2 alpha) and a as
    (4 a(alpha) - a(2 alpha)) / 3 cancels that leading bias; standard errors propagate as if independent
    (conservative: the two fits' residuals are positively correlated)."""
    f1, f2 = at_alpha, at_2alpha
    return {"fit_a": (4 * f1["a"] - f2["a"]) / 3, "fit_a_se": math.hypot(4 * f1["a_se"], f2["a_se"]) / 3,
            "fit_b": 2 * f1["b"] - f2["b"], "fit_b_se": math.hypot(2 * f1["b_se"], f2["b_se"])}


def residual(measured, avg_grad, avg_grad_inner, alpha: float, alg: str, k: int) -> float:
    """|| measured - leading-order prediction ||: the O(alpha^2) remainder."""
    a, b = theory(alg, k)
    return (measured - a * avg_grad - b * alpha * avg_grad_inner).norm().item()


def slope(alphas, residuals) -> float:
    """Least-squares slope of log(residual) against log(alpha): 2 for an O(alpha^2) remainder."""
    x = torch.log(torch.tensor(alphas, dtype=torch.float64))
    y = torch.log(torch.tensor(residuals, dtype=torch.float64))
    xc = x - x.mean()
    return ((xc * (y - y.mean())).sum() / xc.square().sum()).item()


ALPHAS = (2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3)


def expansion_study(ks=(2, 3, 4, 5), alphas=ALPHAS, num_tasks: int = 100, hidden: int = 64, seed: int = 0) -> dict:
    """The whole check: for each k, estimate AvgGrad and AvgGradInner once, measure every algorithm at every
    alpha and 2 alpha on the same tasks, fit, extrapolate, and fit the residual's slope in alpha.

    Returns {"rows", "slopes" (mean over k; empty for a single alpha), "slopes_by_k", "residuals", "alphas", "norms", "num_tasks",
    "hidden"}. A row: alg, k, alpha, fit_a(_se), fit_b(_se) (extrapolated to alpha -> 0, see ``extrapolate``),
    raw_a(_se), raw_b(_se) (the plain fit at alpha), theory_a, theory_b, residual (at alpha).
    """
    ks, alphas = [int(k) for k in ks], sorted(float(a) for a in alphas)
    if not ks or min(ks) < 2:
        raise ValueError(f"ks must all be >= 2 (MAML and FOMAML need a test minibatch; got {ks})")
    if not alphas or alphas[0] <= 0:
        raise ValueError(f"alphas must be positive step sizes (got {alphas})")
    model, phi, all_batches = sine_setup(num_tasks, max(ks), hidden=hidden, seed=seed)
    rows, residuals, norms = [], {alg: {} for alg in COMPARED}, {}
    for k in ks:
        batches = all_batches[:k]
        avg_grad_t, avg_grad_inner_t = estimates(model, phi, batches)
        avg_grad, avg_grad_inner = avg_grad_t.mean(0), avg_grad_inner_t.mean(0)
        norms[k] = {"avg_grad": avg_grad.norm().item(), "avg_grad_inner": avg_grad_inner.norm().item()}
        for alg in COMPARED:
            a, b = theory(alg, k)
            steps = sorted(set(alphas) | {2 * alpha for alpha in alphas})  # a doubling grid shares its points
            measured = {s: measured_update(alg, model, phi, batches, s) for s in steps}
            fitted = {s: fit(m, avg_grad, avg_grad_inner, s) for s, m in measured.items()}
            residuals[alg][k] = []
            for alpha in alphas:
                fits = {1: fitted[alpha], 2: fitted[2 * alpha]}
                res = residual(measured[alpha], avg_grad, avg_grad_inner, alpha, alg, k)
                residuals[alg][k].append(res)
                rows.append({"alg": alg, "k": k, "alpha": alpha, **extrapolate(fits[1], fits[2]),
                             "theory_a": a, "theory_b": b, **{f"raw_{n}": v for n, v in fits[1].items()},
                             "residual": res})
    slopes_by_k = {alg: {k: slope(alphas, r) for k, r in by_k.items()} for alg, by_k in residuals.items()
                   } if len(alphas) > 1 else {}  # a slope needs two step sizes
    slopes = {alg: sum(s.values()) / len(s) for alg, s in slopes_by_k.items()}
    return {"rows": rows, "slopes": slopes, "slopes_by_k": slopes_by_k, "residuals": residuals,
            "alphas": alphas, "norms": norms, "num_tasks": num_tasks, "hidden": hidden}


def format_table(study: dict, alpha: float | None = None) -> str:
    """The coefficient table (theory vs fitted +- s.e.) at one alpha (default the smallest) and the slopes."""
    alpha = study["alphas"][0] if alpha is None else alpha
    lines = [f"{study['num_tasks']} sine tasks, 1-{study['hidden']}-{study['hidden']}-1 MLP, float64; coefficients "
             f"extrapolated to alpha -> 0 from alpha = {alpha:g} and {2 * alpha:g} (raw: the plain fit at {alpha:g})",
             f"{'alg':8}{'k':>3}{'theory a':>10}{'fitted a':>22}{'theory b':>10}{'fitted b':>22}{'raw b':>22}"]
    for r in (r for r in study["rows"] if r["alpha"] == alpha):
        lines.append(f"{r['alg']:8}{r['k']:>3}{r['theory_a']:>10g}{r['fit_a']:>12.5f} +- {r['fit_a_se']:<7.5f}"
                     f"{r['theory_b']:>10g}{r['fit_b']:>12.4f} +- {r['fit_b_se']:<7.4f}"
                     f"{r['raw_b']:>12.4f} +- {r['raw_b_se']:<7.4f}")
    if study["slopes"]:
        lines.append("residual slopes in alpha (theory 2): "
                     + ", ".join(f"{a} {s:.3f}" for a, s in study["slopes"].items()))
    return "\n".join(lines)


def alignment(model, phi: Params, batches) -> float:
    """E[g_bar_i . g_bar_j] over tasks and ordered pairs i != j: how much a step on one minibatch also helps
    another minibatch of the same task (within-task generalisation). Its gradient is 2 AvgGradInner."""
    k = len(batches)
    if k < 2:
        raise ValueError(f"alignment needs k >= 2 minibatches per task (got {k})")
    params = stack(phi, batches[0][0].shape[0])
    grads = [flat(inner.gradients(model, params, *b)[1]) for b in batches]
    total = sum(grads)
    return ((total.square().sum(1) - sum(g.square().sum(1) for g in grads)) / (k * (k - 1))).mean().item()


def direction_rates(update: torch.Tensor, avg_grad: torch.Tensor, avg_grad_inner: torch.Tensor) -> dict:
    """What a unit step phi -> phi - eta u/|u| does at first order: how fast it lowers the expected loss
    (<AvgGrad, u>/|u|) and how fast it raises the alignment (-2 <AvgGradInner, u>/|u|)."""
    unit = update / update.norm()
    return {"loss_decrease": (avg_grad @ unit).item(), "alignment_increase": (-2 * avg_grad_inner @ unit).item()}
