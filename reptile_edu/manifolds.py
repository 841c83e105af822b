"""Paper section 5.2, the solution-manifold view, on a 2-D toy where every projection is exact.

Each task's solution set W_tau is a known curve in the plane of parameters phi = (phi_1, phi_2): a circle
(centre c, radius r) or a line ({phi : n . phi = b}, |n| = 1). The task loss is L_tau = 1/2 s_tau D(phi, W_tau)^2:
zero exactly on the curve, with a task-specific curvature s_tau. The paper reads Reptile as SGD on
E[1/2 D(phi, W_tau)^2], whose gradient is E[phi - P_tau(phi)] (checked here numerically), and Reptile as
replacing the projection P_tau(phi) by k inner SGD steps U_tau^k(phi).

The toy is a model in the package's sense (``CurveModel``: params {"phi": [T, 2]}, ``loss(params, x, y) -> [T]``,
where a task's "data" x is its curve), so the trajectories below come from the package's own
``meta.DISPLACEMENTS`` (Reptile, FOMAML, second-order MAML, joint training) and ``inner.run``.

On these curves every inner step moves phi straight towards P(phi) (and P stays put), so each algorithm's
displacement is w_tau (P_tau(phi) - phi) with a closed-form weight (``weights``), valid when alpha s_tau < 1:
  Reptile 1 - (1 - alpha s)^k,  joint (k = 1) alpha s,  FOMAML alpha s (1 - alpha s)^(k-1),
  MAML alpha s (1 - alpha s)^(2(k-1)).
Their fixed point minimises sum_tau w_tau 1/2 D^2. Only Reptile's weights tend to 1 as k grows: with enough
inner steps U^k(phi) = P(phi) and Reptile converges to the minimiser of E[1/2 D^2] whatever the curvatures;
joint training minimises E[L_tau] (weights proportional to s_tau) instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import meta

CIRCLE, LINE = 0, 1


@dataclass
class Curves:
    """T task curves: kind [T] (CIRCLE or LINE), a [T, 2] (centre, or unit normal), r [T] (radius, or offset b),
    scale [T] (the loss curvature s). float64."""
    kind: torch.Tensor
    a: torch.Tensor
    r: torch.Tensor
    scale: torch.Tensor

    def __len__(self) -> int:
        return self.kind.shape[0]

    def batch(self):
        """The whole task as one inner minibatch in the package's (x [T, 1, 5], y [T, 1]) form."""
        x = torch.stack([self.kind.double(), self.a[:, 0], self.a[:, 1], self.r, self.scale], dim=1)[:, None, :]
        return x, torch.zeros(len(self), 1, dtype=torch.float64)

    def select(self, index) -> "Curves":
        return Curves(self.kind[index], self.a[index], self.r[index], self.scale[index])


def curves(*specs) -> Curves:
    """Build tasks from ("circle", (cx, cy), radius, scale) and ("line", (nx, ny), offset, scale) tuples;
    line normals are normalised."""
    kinds, a, r, s = [], [], [], []
    for kind, vec, value, scale in specs:
        vec = torch.tensor(vec, dtype=torch.float64)
        if kind == "line":
            vec = vec / vec.norm()
        elif kind != "circle":
            raise ValueError(f"curve kind must be 'circle' or 'line' (got {kind!r})")
        if not scale > 0 or (kind == "circle" and not value > 0):
            raise ValueError(f"scale (and a circle's radius) must be > 0 (got {value}, {scale})")
        kinds.append(CIRCLE if kind == "circle" else LINE)
        a.append(vec)
        r.append(float(value))
        s.append(float(scale))
    return Curves(torch.tensor(kinds), torch.stack(a), torch.tensor(r, dtype=torch.float64),
                  torch.tensor(s, dtype=torch.float64))


def demo_curves() -> Curves:
    """The notebook's three tasks: two circles and a line, with different curvatures (alpha s < 1 at alpha 0.5)."""
    return curves(("circle", (-1.0, 0.0), 1.5, 1.6), ("circle", (2.5, 1.0), 1.0, 0.3), ("line", (1.0, 2.0), -2.0, 1.0))


def _unpack(x):
    x = x[:, 0, :]
    return x[:, 0].round().long(), x[:, 1:3], x[:, 3], x[:, 4]


def _signed_distance(kind, a, r, phi):
    """Differentiable signed distance: |phi - c| - r for circles, n . phi - b for lines."""
    circle = (phi - a).norm(dim=-1) - r
    line = (phi * a).sum(dim=-1) - r
    return torch.where(kind == CIRCLE, circle, line)


def distance(tasks: Curves, phi: torch.Tensor) -> torch.Tensor:
    """D(phi, W_tau) for each task, [T]; phi [2] (shared) or [T, 2]."""
    return _signed_distance(tasks.kind, tasks.a, tasks.r, phi.expand(len(tasks), 2)).abs()


def project(tasks: Curves, phi: torch.Tensor) -> torch.Tensor:
    """P_tau(phi), the closest point of each task's curve, [T, 2] (unique away from circle centres)."""
    phi = phi.expand(len(tasks), 2)
    offset = phi - tasks.a
    on_circle = tasks.a + tasks.r[:, None] * offset / offset.norm(dim=-1, keepdim=True)
    on_line = phi - ((phi * tasks.a).sum(-1) - tasks.r)[:, None] * tasks.a
    return torch.where((tasks.kind == CIRCLE)[:, None], on_circle, on_line)


def half_dist_sq(tasks: Curves, phi: torch.Tensor) -> torch.Tensor:
    """1/2 D(phi, W_tau)^2 per task, [T], differentiable in phi (its gradient is phi - P_tau(phi))."""
    return 0.5 * _signed_distance(tasks.kind, tasks.a, tasks.r, phi.expand(len(tasks), 2)).square()


def objective(tasks: Curves, points: torch.Tensor, task_weights: torch.Tensor | None = None) -> torch.Tensor:
    """sum_tau w_tau 1/2 D(phi, W_tau)^2 at many points [N, 2] at once, [N] (w = 1/T: the expectation)."""
    w = torch.full((len(tasks),), 1 / len(tasks), dtype=torch.float64) if task_weights is None else task_weights
    dist = _signed_distance(tasks.kind, tasks.a, tasks.r, points[:, None, :])
    return 0.5 * (w * dist.square()).sum(dim=1)


class CurveModel:
    """The toy as a package model: parameters {"phi": [T, 2]}, loss 1/2 s D^2 with the curve passed as x."""

    def init_params(self, generator: torch.Generator | None = None) -> dict:
        return {"phi": torch.randn(2, generator=generator, dtype=torch.float64)}

    def loss(self, params, x, y) -> torch.Tensor:
        kind, a, r, scale = _unpack(x)
        return 0.5 * scale * _signed_distance(kind, a, r, params["phi"]).square()

    @torch.no_grad()
    def loss_and_grads(self, params, x, y):
        """``loss`` and its gradient s (phi - P(phi)) written out: the first-order inner loop then skips autograd,
        whose bookkeeping dominates on 2 parameters (tests check the meta-steps against closed forms)."""
        kind, a, r, scale = _unpack(x)
        phi = params["phi"]
        dist = _signed_distance(kind, a, r, phi)
        offset = phi - a
        direction = torch.where((kind == CIRCLE)[:, None], offset / offset.norm(dim=-1, keepdim=True), a)
        return 0.5 * scale * dist.square(), [(scale * dist)[:, None] * direction]


def weights(tasks: Curves, algorithm: str, k: int, alpha: float) -> torch.Tensor:
    """Closed-form weight of each task in the displacement sum_tau w_tau (P_tau - phi) (module docstring)."""
    q = 1 - alpha * tasks.scale
    if not (q > 0).all():
        raise ValueError(f"alpha * scale must be < 1 for every task (got alpha={alpha}, max scale {tasks.scale.max()})")
    forms = {"reptile": lambda: 1 - q ** k, "joint": lambda: 1 - q, "fomaml": lambda: (1 - q) * q ** (k - 1),
             "maml": lambda: (1 - q) * q ** (2 * (k - 1))}
    if algorithm not in forms:
        raise ValueError(f"algorithm must be one of {', '.join(forms)} (got {algorithm!r})")
    return forms[algorithm]()


def minimiser(tasks: Curves, task_weights: torch.Tensor | None = None, box: float = 6.0, grid: int = 241,
              tol: float = 1e-13, max_iters: int = 100_000) -> torch.Tensor:
    """argmin_phi sum_tau w_tau 1/2 D(phi, W_tau)^2 (default w = 1: the expected squared distance), numerically.

    The objective is not convex (circles), so: the best point of a grid over [-box, box]^2, then the
    fixed-point iteration phi <- sum w P(phi) / sum w (gradient descent with step 1 / sum w) to ``tol``.
    """
    w = torch.ones(len(tasks), dtype=torch.float64) if task_weights is None else task_weights
    axis = torch.linspace(-box, box, grid, dtype=torch.float64)
    points = torch.cartesian_prod(axis, axis)
    phi = points[objective(tasks, points, w).argmin()]
    for _ in range(max_iters):
        new = (w[:, None] * project(tasks, phi)).sum(0) / w.sum()
        if (new - phi).norm() < tol:
            return new
        phi = new
    raise RuntimeError(f"minimiser did not converge in {max_iters} iterations (last step {(new - phi).norm():.2e})")


def trajectory(algorithm: str, tasks: Curves, phi0, k: int, alpha: float, eps: float, iters: int,
               serial: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """Meta-training iterates [iters + 1, 2] with the package's meta-step and the official outer rule
    phi += eps * d. Batched (default): all tasks every iteration, constant eps (deterministic, so it converges
    to the fixed point). ``serial``: one random task per iteration (paper Algorithm 1) with eps annealed
    linearly to 0 as the official code does."""
    if algorithm not in meta.DISPLACEMENTS:
        raise ValueError(f"algorithm must be one of {', '.join(meta.DISPLACEMENTS)} (got {algorithm!r})")
    model, step = CurveModel(), meta.DISPLACEMENTS[algorithm]
    phi = torch.as_tensor(phi0, dtype=torch.float64).clone()
    path = [phi.clone()]
    for i in range(iters):
        chosen = tasks.select(torch.randint(len(tasks), (1,), generator=generator)) if serial else tasks
        d, _, _ = step(model, {"phi": phi}, [chosen.batch()] * k, "sgd", alpha)
        phi = phi + (eps * (1 - i / iters) if serial else eps) * d["phi"]
        path.append(phi.clone())
    return torch.stack(path)
