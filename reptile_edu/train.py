"""The meta-training loop: sample a meta-batch, get the algorithm's displacement, apply the outer rule.

``meta_train(config, callback)`` reports through the callback only, so notebooks draw plots, progress
bars or widgets while this module knows nothing of them; tests call it with no UI at all.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import fast, inner, meta, tasks
from .config import DATASETS, Config, data_root as default_data_root
from .data import sine
from .models import MiniImageNetCNN, OmniglotCNN, Params, SineMLP


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a torch generator for sampling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def cudnn_mode(deterministic: bool) -> None:
    """cuDNN's deterministic algorithms (a GPU run repeats bit for bit) or autotuned ones (faster); see
    ``Config.deterministic``. A CUDA graph keeps the algorithms it was captured with."""
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


@dataclass
class History:
    """What a run leaves behind: per-iteration inner losses, periodic evaluations, the final weights."""
    config: dict
    losses: list[float] = field(default_factory=list)  # mean over tasks of the first inner batch's loss
    evals: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    params: Params | None = None
    inner_state: dict | None = None  # the carried inner Adam state at the end (evaluation starts from it)

    def to_dict(self) -> dict:
        return {"config": self.config, "losses": self.losses, "evals": self.evals, "wall_s": self.wall_s}


class OuterRule:
    """``interpolate``: phi += eps * d (official). ``adam``: Adam on the gradient -d with learning rate eps."""

    def __init__(self, config: Config, phi: Params):
        self.kind = config.outer_optimizer
        self.optimizer = torch.optim.Adam(list(phi.values()), lr=config.meta_step_size) if self.kind == "adam" else None

    def state_dict(self) -> dict:
        return self.optimizer.state_dict() if self.optimizer is not None else {}

    def load_state_dict(self, saved: dict) -> None:
        if self.optimizer is not None:
            self.optimizer.load_state_dict(saved)

    @torch.no_grad()
    def apply(self, phi: Params, d: Params, eps: float) -> None:
        if self.optimizer is None:  # phi <- phi + eps * d (the CUDA-graph step rounds it the same way)
            for k, p in phi.items():
                p.add_(d[k] * eps)
            return
        for k, p in phi.items():
            p.grad = -d[k]
        for group in self.optimizer.param_groups:
            group["lr"] = eps
        self.optimizer.step()


def build_model(config: Config):
    """The network of ``config.dataset``: the sine MLP, or the Omniglot / Mini-ImageNet CNN with N outputs."""
    if config.dataset == "sine":
        return SineMLP()
    if config.dataset == "omniglot":
        return OmniglotCNN(config.num_classes)
    if config.dataset in ("miniimagenet", "tieredimagenet"):  # both 84x84 RGB
        return MiniImageNetCNN(config.num_classes)
    raise ValueError(f"unknown dataset {config.dataset!r}: this trainer knows {', '.join(DATASETS)}")


def load_dataset(config: Config, split: str = "train", data_root=None):
    """An image split of ``config.dataset``, decoded once, then cached.

    ``data_root`` (default ``config.data_root()``) holds ``omniglot/``, ``miniimagenet/`` and ``tieredimagenet/``; a folder that is
    itself a dataset root (e.g. ``.../miniimagenet/full``) is accepted too.
    """
    base = Path(data_root).expanduser() if data_root is not None else default_data_root()
    root = base / config.dataset if (base / config.dataset).is_dir() else base
    if config.dataset == "omniglot":
        from .data.omniglot import load_omniglot
        return load_omniglot(root, split=split)
    if config.dataset == "miniimagenet":
        from .data import miniimagenet
        return miniimagenet.load_miniimagenet(root, split=split)
    if config.dataset == "tieredimagenet":
        from .data import tieredimagenet
        return tieredimagenet.load_tieredimagenet(root, split=split)
    raise ValueError(f"dataset {config.dataset!r} has no image split to load")


def sample_batches(config: Config, generator: torch.Generator, dataset=None):
    """One meta-batch of tasks, as the list of k inner minibatches (x, y) with leading dimension T."""
    if config.dataset == "sine":
        amplitude, phase = sine.sample_tasks(config.meta_batch_size, generator)
        return sine.epoch_batches(amplitude, phase, config.inner_batch_size, config.inner_iters, generator)
    if dataset is None:
        raise ValueError(f"sample_batches needs the {config.dataset} ImageDataset (dataset=...)")
    return tasks.training_batches(dataset, config.num_classes, config.train_shots or config.num_shots,
                                  config.inner_batch_size, config.inner_iters, config.meta_batch_size, generator,
                                  config.replacement, config.foml_tail)


@dataclass
class TrainState:
    """Everything a run is, in one object: resuming from ``state_dict()`` continues bit-exactly on CPU.

    ``phi`` the meta-parameters; ``outer`` the outer rule (with its Adam state, if any); ``inner_state`` the
    carried inner Adam state ([1, ...]; None for SGD, for ``inner_state="reset"`` and before the first step);
    ``generator`` draws every task and minibatch; ``iteration`` meta-iterations done; ``history`` the record.
    """
    config: Config
    phi: Params
    outer: OuterRule
    generator: torch.Generator
    history: History
    inner_state: dict | None = None
    iteration: int = 0

    @property
    def runs(self) -> list["TrainState"]:
        """The runs this state trains: itself (``SeedStates`` holds several)."""
        return [self]

    @classmethod
    def new(cls, config: Config, params: Params | None = None) -> "TrainState":
        """A fresh run: seeds everything (``set_seed``), initialises phi (or copies ``params``)."""
        config.validate()
        if config.seeds:
            raise ValueError("a config with several seeds trains as train.SeedStates, one TrainState per seed")
        generator = set_seed(config.seed)
        cudnn_mode(config.deterministic)
        init = params or build_model(config).init_params(generator)
        phi = {k: v.detach().clone().to(config.device) for k, v in init.items()}
        return cls(config, phi, OuterRule(config, phi), generator, History(config=config.to_dict()))

    def state_dict(self) -> dict:
        """Tensors and plain Python values only (``torch.load(weights_only=True)`` reads it back). The logged losses
        go in as one tensor of the parameters' dtype, which holds them exactly (they are computed in it) in far fewer
        bytes than a pickled list of floats."""
        dtype = next(iter(self.phi.values())).dtype
        return {"config": self.config.to_dict(), "phi": {k: v.detach().clone() for k, v in self.phi.items()},
                "outer": self.outer.state_dict(), "inner_state": _clone(self.inner_state),
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                "iteration": self.iteration,
                "history": {**self.history.to_dict(), "losses": torch.tensor(self.history.losses, dtype=dtype),
                            "params": None}}

    @classmethod
    def from_state_dict(cls, saved: dict) -> "TrainState":
        config = Config(**saved["config"])
        phi = {k: v.detach().clone().to(config.device) for k, v in saved["phi"].items()}
        outer = OuterRule(config, phi)
        outer.load_state_dict(saved["outer"])
        generator = torch.Generator()
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        cudnn_mode(config.deterministic)
        inner_state = inner.state_to(_clone(saved["inner_state"]), config.device)
        h = saved["history"]
        # float64 holds every logged loss exactly, whatever dtype the parameters have
        losses = torch.as_tensor(h["losses"], dtype=torch.float64).tolist()
        history = History(config=h["config"], losses=losses, evals=list(h["evals"]), wall_s=h["wall_s"])
        return cls(config, phi, outer, generator, history, inner_state, saved["iteration"])


class SeedStates:
    """Several independent runs trained together, one per seed of ``config.seeds``, each a ``TrainState`` exactly
    as if it ran alone (``config.alone(seed)``: its own initialisation, task stream, outer rule, carried inner
    state and history). ``Step`` stacks their parameters and draws all their tasks into one meta-batch: one set of
    batched kernels for S x meta-batch tasks instead of S runs' worth, which saves launches where a step is
    launch-bound (a GPU) and little where it is arithmetic-bound (a CPU)."""

    def __init__(self, config: Config, runs: list[TrainState]):
        self.config, self.runs = config, runs

    @property
    def iteration(self) -> int:
        return self.runs[0].iteration  # the runs step together

    @classmethod
    def new(cls, config: Config, params: Params | None = None) -> "SeedStates":
        """Fresh runs, one per seed (all from ``params`` if given, else each from its own seeded initialisation)."""
        config.validate()
        if not config.seeds:
            raise ValueError("SeedStates needs config.seeds (e.g. seeds=(0, 1, 2)); one run is a TrainState")
        return cls(config, [TrainState.new(config.alone(seed), params) for seed in config.seeds])

    def state_dict(self) -> dict:
        """Each run's ``TrainState.state_dict()``, under the several-seed config."""
        return {"config": self.config.to_dict(), "runs": [run.state_dict() for run in self.runs],
                "iteration": self.iteration}

    @classmethod
    def from_state_dict(cls, saved: dict) -> "SeedStates":
        config = Config(**saved["config"])
        runs = []
        for run in saved["runs"]:  # each run executes as the several-seed config says (device, determinism)
            runs.append(TrainState.from_state_dict({**run, "config": config.alone(run["config"]["seed"]).to_dict()}))
        return cls(config, runs)


def resume_state(saved: dict) -> TrainState | SeedStates:
    """A run checkpoint's state, of one run or of several seeds."""
    return SeedStates.from_state_dict(saved) if "runs" in saved else TrainState.from_state_dict(saved)


def new_state(config: Config, params: Params | None = None) -> TrainState | SeedStates:
    """A fresh run, or fresh runs of ``config.seeds``."""
    return SeedStates.new(config, params) if config.seeds else TrainState.new(config, params)


def _clone(state):
    if state is None:
        return None
    return {"v": {k: v.clone() for k, v in state["v"].items()}, "t": state["t"].clone()}


def _diverged(config: Config, iteration: int, loss: float, seed: int | None = None) -> FloatingPointError:
    """The error every step raises when NaN/inf appears (phi is left as before that iteration)."""
    which = f" (seed {seed})" if config.seeds else ""
    return FloatingPointError(f"training diverged at meta-iteration {iteration}{which} (inner loss {loss}): "
                              f"lower inner_lr ({config.inner_lr}) or meta_step_size ({config.meta_step_size})")


def together(runs: list[TrainState]) -> tuple[Params, dict | None, int | None]:
    """The runs' parameters and carried inner states in the form ``meta.meta_step`` takes them: one run's own
    (``runs`` argument None), or S runs' stacked on a leading dimension (``runs=S``)."""
    if len(runs) == 1:
        return runs[0].phi, runs[0].inner_state, None
    phi = {k: torch.stack([run.phi[k] for run in runs]) for k in runs[0].phi}
    states = [run.inner_state for run in runs]
    return phi, None if states[0] is None else inner.join_states(states), len(runs)


def draw(runs: list[TrainState], dataset=None):
    """One meta-batch for every run, each from its own generator, run after run on the task dimension."""
    return tasks.join_meta_batches([sample_batches(run.config, run.generator, dataset) for run in runs])


class Step:
    """Meta-iterations as the paper writes them (Algorithm 2; Algorithm 1 is a meta-batch of one): sample tasks,
    run the inner loop from phi, take the algorithm's displacement, apply the outer rule. Several seeds' runs
    (``SeedStates``) take each iteration together, every run with its own tasks, displacement and outer rule.

    ``displacement`` is ``meta.meta_step`` or a function of the same signature (``fast.distributed.meta_step``
    shards the tasks over processes). ``run(n)`` updates the state in place and returns the logged losses (one
    list per iteration, a loss per run) and None, or, where NaN/inf appeared, the losses before it and the first
    run's bad loss with that run's seed (the runs' parameters then as before that iteration).
    """
    chunk = 1  # meta-iterations per run() call: the callback sees every iteration's live state

    def __init__(self, state: TrainState | SeedStates, model, dataset=None, displacement=meta.meta_step):
        self.state, self.model, self.dataset, self.displacement = state, model, dataset, displacement

    def run(self, n: int) -> tuple[list[list[float]], tuple[float, int] | None]:
        config, runs = self.state.config, self.state.runs
        dtype = next(iter(runs[0].phi.values())).dtype  # batches follow the parameters (float64 for exact checks)
        carry = config.inner_state == "carry"
        logged = []
        for _ in range(n):
            eps = config.meta_step_at(self.state.iteration)
            batches = [(x.to(config.device, dtype), y.to(config.device)) for x, y in draw(runs, self.dataset)]
            phi, inner_state, stacked = together(runs)
            d, inner_state, losses = self.displacement(config.algorithm, self.model, phi, batches,
                                                       config.inner_optimizer, config.inner_lr, inner_state,
                                                       config.path, carry, runs=stacked)
            # one device sync for the logged losses and a check of every run's inner losses and displacement
            _, logged_loss, finite = meta.per_run(d, losses, stacked)
            loss, ok = torch.stack([logged_loss.double(), finite.double()]).tolist()
            if not all(ok):
                bad = ok.index(0.0)
                return logged, (loss[bad], runs[bad].config.seed)
            for r, run in enumerate(runs):
                run.outer.apply(run.phi, {k: v[r] for k, v in d.items()} if stacked else d, eps)
                run.inner_state = inner.select_state(inner_state, r) if stacked and inner_state else inner_state
                run.history.losses.append(loss[r])
                run.iteration += 1
            logged.append(loss)
        return logged, None


def choose_step(state: TrainState, model, dataset=None):
    """The engine for a run: the CUDA-graph step where it applies (``fast.graphs``; on a CPU it runs the same
    step eagerly), the tasks sharded over processes under torchrun, else the plain ``Step``."""
    if fast.graphs.supports(state.config):
        return fast.graphs.StaticStep(state, model, dataset)
    if fast.distributed.world()[1] > 1:
        if state.config.seeds:
            raise ValueError("several seeds train in one process: run them without torchrun, or one torchrun per seed")
        if state.config.path != "vectorised":
            raise ValueError("training across processes shards the vectorised path: use path='vectorised'")
        return Step(state, model, dataset, fast.distributed.meta_step)
    return Step(state, model, dataset)


def meta_train(config: Config, callback=None, params: Params | None = None, eval_set=None, *,
               dataset=None, state: TrainState | SeedStates | None = None, until: int | None = None):
    """Meta-train from ``params`` (default: a fresh seeded initialisation), or continue ``state`` (updated in
    place), to ``config.meta_iters`` (or stop after iteration ``until``, same schedule) and return the History;
    with ``config.seeds``, train one run per seed together and return their Histories, in seed order, each what
    the seed's run alone (``config.alone(seed)``) would leave, but for the shared wall time.

    ``callback(event)`` receives dicts: ``{"event": "step", "iteration", "meta_iters", "meta_step", "loss",
    "state"}`` after every meta-iteration (``state`` is the live TrainState or SeedStates, to checkpoint; with
    seeds ``loss`` is the runs' mean and ``losses`` each run's; the CUDA-graph step runs chunks of up to
    ``fast.graphs.SYNC`` iterations, whose events arrive together after each chunk) and ``{"event": "eval",
    "iteration", result keys, "params"}`` (with ``"seed"`` for each seed's run) every ``config.eval_interval``
    iterations and at the end, when ``eval_set(phi, inner_state) -> dict`` is given (``evaluation.sine_probe``
    or ``evaluation.accuracy_probe``). Image datasets come from ``dataset`` or, if None, are loaded from
    ``data_root()``.
    """
    state = state if state is not None else new_state(config, params)
    config, runs = state.config, state.runs
    model = build_model(config)
    if config.dataset != "sine":
        dataset = (dataset if dataset is not None else load_dataset(config)).to(config.device)
    start = time.perf_counter() - runs[0].history.wall_s

    def evaluate(iteration):
        if eval_set is None or (runs[0].history.evals and runs[0].history.evals[-1]["iteration"] == iteration):
            return
        for run in runs:
            result = eval_set(run.phi, run.inner_state)
            run.history.evals.append({"iteration": iteration, **result, "wall_s": time.perf_counter() - start})
            if callback:
                seed = {"seed": run.config.seed} if config.seeds else {}
                callback({"event": "eval", "iteration": iteration, **result, **seed, "params": run.phi})

    def clock():
        for run in runs:
            run.history.wall_s = time.perf_counter() - start

    stop = config.meta_iters if until is None else min(until, config.meta_iters)
    step = choose_step(state, model, dataset)
    while state.iteration < stop:
        i = state.iteration
        if i % config.eval_interval == 0:
            evaluate(i)
        # up to step.chunk iterations, cut at evaluations
        n = min(stop - i, step.chunk - i % step.chunk, config.eval_interval - i % config.eval_interval)
        losses, bad = step.run(n)
        clock()
        for j, loss in enumerate(losses if callback else []):
            each = {"loss": sum(loss) / len(loss), "losses": loss} if config.seeds else {"loss": loss[0]}
            callback({"event": "step", "iteration": i + j + 1, "meta_iters": config.meta_iters,
                      "meta_step": config.meta_step_at(i + j), **each, "state": state})
        if bad is not None:
            raise _diverged(config, state.iteration, *bad)
    if stop == config.meta_iters:
        evaluate(config.meta_iters)
    clock()
    for run in runs:
        run.history.params = run.phi
        run.history.inner_state = run.inner_state
    return [run.history for run in runs] if config.seeds else runs[0].history
