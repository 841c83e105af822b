"""The vectorised image meta-iteration as one static, sync-free step, replayed as a CUDA graph on a GPU.

Why: an Omniglot meta-iteration is several hundred tiny kernels (5 tasks x 5 inner Adam steps, forward and
backward of a 4-layer CNN on 10 images each). On a fast GPU each takes less time to run than to *launch* from
Python, so the eager loop is launch-bound; a CUDA graph records the kernels once and launches them all at once,
which removes that overhead (measured rates: ``results/gpu/throughput.json``).

What a graph needs, and how this module gives it:
  * fixed memory: phi, the carried inner Adam state, the meta-step and the minibatch indices live in tensors
    that never move. Each iteration copies in new indices (drawn on the CPU with the run's own generator by
    ``tasks.training_indices``, so the tasks are exactly the eager path's) and the annealed meta-step, then
    replays; the pixels are gathered inside the graph from the dataset already on the GPU;
  * no host sync inside: Adam's bias correction is a tensor (``inner.adam_step``), the merged carry is told
    its step count (``inner.merge_states``), and the NaN/inf check is a sticky device flag: phi and the state
    move only while it holds. The host reads it, with the logged losses, once per ``SYNC`` iterations and
    then stops the run at the first bad iteration, phi as it was before it.
The step itself is ``meta.meta_step`` (vectorised) plus the interpolating outer rule, so there is one
implementation of the algorithm. ``StaticStep`` runs it eagerly where it does not capture (a CPU):
``tests/test_fast_graphs.py`` checks that against the plain ``train.Step`` bit for bit, and, on a GPU, replay against
eager execution.
"""
from __future__ import annotations

import os

import torch

from .. import inner, meta, tasks
from ..models import flatten, unflatten
from . import distributed

SYNC = 100  # meta-iterations between host reads of the logged losses and the divergence flag
GRAPHS_ENV = "REPTILE_EDU_CUDA_GRAPHS"  # "0": run the static step eagerly on a GPU too (an escape hatch)


def enabled() -> bool:
    """Whether a CUDA run captures its step as a graph (``$REPTILE_EDU_CUDA_GRAPHS`` is not ``0``)."""
    return os.environ.get(GRAPHS_ENV, "1").strip() != "0"


def supports(config) -> bool:
    """The runs the static step covers: image data, a first-order algorithm on the vectorised path, the official
    interpolating outer rule, one process (everything else takes the plain ``train.Step``)."""
    return (config.dataset != "sine" and config.path == "vectorised" and config.outer_optimizer == "interpolate"
            and config.algorithm in ("reptile", "fomaml", "joint") and distributed.world()[1] == 1)


class StaticStep:
    """Runs a ``train.TrainState``'s meta-iterations (or a ``train.SeedStates``'s, every seed's run stacked on the
    leading dimension), updating phi, inner state and iteration in place.

    ``capture`` (default: when phi is on a CUDA device, unless ``$REPTILE_EDU_CUDA_GRAPHS`` is ``0``) records one
    iteration as a CUDA graph on first use; without it the same step runs eagerly.
    """
    chunk = SYNC  # train.meta_train calls run() with at most this many iterations, cut at SYNC boundaries

    def __init__(self, state, model, dataset: tasks.ImageDataset, capture: bool | None = None):
        runs = state.runs
        first = next(iter(runs[0].phi.values()))
        self.state, self.model, self.dataset, self.dtype = state, model, dataset.to(first.device), first.dtype
        config = state.config
        self.carry = config.inner_state == "carry" and config.inner_optimizer == "adam"
        if capture is None:
            capture = first.is_cuda and enabled()
        self.capture = capture
        self.graph = None
        self.views = None  # per inner step (flat [T, B], y [T, B]): views of one index buffer
        self.eps = torch.zeros((), dtype=self.dtype, device=first.device)
        self.ok = torch.ones((), dtype=torch.bool, device=first.device)
        self.bad_at = torch.zeros((), dtype=torch.long, device=first.device)
        self.bad_run = torch.zeros((), dtype=torch.long, device=first.device)
        self.count = torch.zeros((), dtype=torch.long, device=first.device)
        self.losses = torch.zeros(SYNC, len(runs), dtype=torch.float64, device=first.device)
        # every run's phi and carried second moments become views of one row of a flat [S, P] buffer each, so that
        # the outer update and its NaN guard are a few kernels for the whole model and all runs (values unchanged)
        shapes = {k: p.shape for k, p in runs[0].phi.items()}
        self.flat_phi = torch.stack([flatten(run.phi) for run in runs])
        for r, run in enumerate(runs):
            run.phi.update(unflatten(self.flat_phi[r], shapes))
        self.stacked = None if len(runs) == 1 else len(runs)  # meta.meta_step's ``runs``
        self.phi = runs[0].phi if self.stacked is None else unflatten(self.flat_phi, shapes)
        self.carried = None
        if self.carry:  # a zero state with t = 0 is exactly a fresh one (inner.adam_state)
            self.flat_v = torch.zeros_like(self.flat_phi)
            t = torch.zeros(len(runs), dtype=torch.float64, device=first.device)
            for r, run in enumerate(runs):
                if run.inner_state is not None:
                    self.flat_v[r].copy_(flatten(run.inner_state["v"], 1)[0])
                    t[r] = run.inner_state["t"][0]
            self.carried = {"v": unflatten(self.flat_v, shapes), "t": t}

    def _draw(self) -> list[tasks.Batch]:
        drawn = []
        for run in self.state.runs:
            c = run.config
            drawn.append(tasks.training_indices(self.dataset, c.num_classes, c.train_shots or c.num_shots,
                                                c.inner_batch_size, c.inner_iters, c.meta_batch_size, run.generator,
                                                c.replacement, c.foml_tail))
        return tasks.join_meta_batches(drawn)

    def _load(self, iteration: int, slot: int) -> None:
        """This iteration's indices and meta-step into the fixed tensors: no sync, so the host draws iteration j+1
        while the device runs j. The indices are packed into row ``slot`` of a host buffer that is page-locked
        on CUDA: a copy from pageable memory would first wait for the stream, serialising the two. Each of
        ``run``'s iterations has its own row, and ``run`` ends in a sync, so no row is rewritten before its
        copy has run."""
        steps = self._draw()
        parts = [torch.stack([f, y]).reshape(-1) for f, y in steps]
        if self.views is None:
            n = sum(p.numel() for p in parts)
            self.staging = torch.empty(SYNC, n, dtype=parts[0].dtype, pin_memory=self.eps.is_cuda)
            self.indices = torch.empty(n, dtype=parts[0].dtype, device=self.eps.device)
            self.views, offset = [], 0
            for f, _ in steps:
                n = f.numel()
                self.views.append((self.indices[offset:offset + n].view(f.shape),
                                   self.indices[offset + n:offset + 2 * n].view(f.shape)))
                offset += 2 * n
        torch.cat(parts, out=self.staging[slot])
        self.indices.copy_(self.staging[slot], non_blocking=True)
        self.eps.fill_(self.state.config.meta_step_at(iteration))

    def _step(self) -> None:
        """One meta-iteration on the fixed tensors: tensor operations only, so that it can be captured."""
        c = self.state.config
        batches = [(tasks.pixels(self.dataset, f).to(self.dtype), y) for f, y in self.views]
        d, merged, losses = meta.meta_step(c.algorithm, self.model, self.phi, batches, c.inner_optimizer,
                                           c.inner_lr, self.carried, "vectorised", self.carry, runs=self.stacked)
        d, logged_loss, finite = meta.per_run(d, losses, self.stacked)  # d flat, [S, P]
        fresh = self.ok & ~finite.all()
        self.bad_at.copy_(torch.where(fresh, self.count, self.bad_at))
        self.bad_run.copy_(torch.where(fresh, (~finite).long().argmax(), self.bad_run))
        self.ok.logical_and_(finite.all())
        # the outer rule as train.OuterRule computes it, phi + d * eps, moving nothing once NaN/inf was seen
        self.flat_phi.copy_(torch.where(self.ok, self.flat_phi + d * self.eps, self.flat_phi))
        if merged is not None:
            self.flat_v.copy_(torch.where(self.ok, flatten(merged["v"], 1), self.flat_v))
            self.carried["t"].copy_(torch.where(self.ok, merged["t"], self.carried["t"]))
        self.losses.index_copy_(0, self.count.reshape(1), logged_loss.double()[None])
        self.count.add_(1)

    def _record(self) -> None:
        """Warm up on a side stream (cuDNN and autograd set themselves up), undo it, then capture one step."""
        live = [self.flat_phi, self.ok, self.bad_at, self.bad_run, self.count, self.losses]
        if self.carried is not None:
            live += [self.flat_v, self.carried["t"]]
        saved = [t.clone() for t in live]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        for t, s in zip(live, saved):
            t.copy_(s)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._step()

    def run(self, n: int) -> tuple[list[list[float]], tuple[float, int] | None]:
        """``n`` <= SYNC meta-iterations from ``state.iteration``. Returns the logged losses (per iteration, each
        run's mean over tasks of the first inner batch's loss) of the iterations done, which are added to the
        histories, and None, or, where NaN/inf appeared, the first bad run's logged loss of the iteration that
        diverged and its seed: the state (phi, inner state, iteration) is then at the last good iteration, and
        the run must stop."""
        if not 1 <= n <= SYNC:
            raise ValueError(f"run 1..{SYNC} meta-iterations at a time (got {n})")
        runs, start = self.state.runs, self.state.iteration
        self.count.zero_()
        for j in range(n):
            self._load(start + j, j)
            if self.capture and self.graph is None:
                self._record()
            if self.graph is not None:
                self.graph.replay()
            else:
                self._step()
        *flat, ok, bad_at, bad_run = torch.cat([self.losses[:n].reshape(-1), self.ok.double().reshape(1),
                                                self.bad_at.double().reshape(1),
                                                self.bad_run.double().reshape(1)]).tolist()  # the chunk's one sync
        losses = [flat[j * len(runs):(j + 1) * len(runs)] for j in range(n)]
        done = n if ok else int(bad_at)
        for r, run in enumerate(runs):
            run.history.losses.extend(loss[r] for loss in losses[:done])
            run.iteration = start + done
            if self.carried is not None:
                run.inner_state = self.carried if self.stacked is None else inner.select_state(self.carried, r)
        if ok:
            return losses, None
        return losses[:done], (losses[done][int(bad_run)], runs[int(bad_run)].config.seed)
