"""One config dataclass for every run, the smoke switch and the data/cache locations.

Field names follow the official supervised-reptile vocabulary (``inner_iters``, ``meta_step_size``,
``train_shots`` ...), so a preset reads like the README command it encodes.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

SMOKE_ENV = "REPTILE_EDU_SMOKE"
DATA_ENV = "REPTILE_EDU_DATA"
CACHE_ENV = "REPTILE_EDU_CACHE"
OFFLINE_ENV = "REPTILE_EDU_OFFLINE"

ALGORITHMS = ("reptile", "fomaml", "maml", "joint")
# the three meta-gradients that the paper compares (section 5) and notebooks 02 and 07 put side by side
COMPARED = ("maml", "fomaml", "reptile")
INNER_OPTIMIZERS = ("sgd", "adam")
OUTER_OPTIMIZERS = ("interpolate", "adam")
DATASETS = ("sine", "omniglot", "miniimagenet", "tieredimagenet")
PATHS = ("faithful", "vectorised")
INNER_STATES = ("carry", "reset")
# the two ways the official evaluation predicts a query (docs/paper.md §5)
MODES = ("transductive", "non-transductive")


def smoke_mode() -> bool:
    """True when ``REPTILE_EDU_SMOKE`` is 1/true/yes: notebooks and CLI defaults shrink to seconds."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() in ("1", "true", "yes")


def offline() -> bool:
    """True when ``REPTILE_EDU_OFFLINE`` is 1/true/yes: the chapters never try to download data (the tests set
    it, so that no test needs the network)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def budget(full, smoke):
    """``smoke`` under the smoke switch, else ``full`` (iteration counts, task counts, ...)."""
    return smoke if smoke_mode() else full


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Where datasets live: the explicit argument, else ``$REPTILE_EDU_DATA``, else ``~/.cache/reptile_edu/data``."""
    if explicit is not None:
        return Path(explicit).expanduser()
    return Path(os.environ.get(DATA_ENV) or "~/.cache/reptile_edu/data").expanduser()


def cache_root(explicit: str | os.PathLike | None = None) -> Path:
    """Where decoded uint8 caches go; never inside the (possibly read-only) data root."""
    if explicit is not None:
        return Path(explicit).expanduser()
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/reptile_edu/cache").expanduser()


@dataclass
class Config:
    """Everything a meta-training run needs. Presets are instances of this; notebooks override fields.

    Outer rule: ``interpolate`` is the official ``phi += eps * mean(displacement)``; ``adam`` treats
    ``-displacement`` as a gradient for an Adam outer optimiser with learning rate ``meta_step_size``
    (the blog's variant, used here for sine-wave FOMAML and MAML, whose settings the paper does not give).
    """

    preset: str = "sine"
    dataset: str = "sine"
    algorithm: str = "reptile"
    # task shape
    num_classes: int = 5
    num_shots: int = 5
    train_shots: int = 0  # 0 means "same as num_shots", as the official --train-shots default
    # inner loop
    inner_optimizer: str = "sgd"
    inner_lr: float = 0.02
    inner_batch_size: int = 10
    inner_iters: int = 5
    replacement: bool = False
    foml_tail: int | None = None
    # outer loop
    outer_optimizer: str = "interpolate"
    meta_step_size: float = 0.1
    meta_step_size_final: float = 0.0
    meta_batch_size: int = 1
    meta_iters: int = 30_000
    # execution: "faithful" runs a meta-batch's tasks one after another (the official code); "vectorised" runs
    # them at once. inner_state "carry" keeps the inner Adam state across tasks and meta-iterations as the
    # official code (the vectorised path merges it: meta.meta_step); "reset" starts every task fresh.
    path: str = "vectorised"
    inner_state: str = "carry"
    # evaluation
    eval_inner_iters: int = 32
    eval_batch_size: int = 10
    eval_interval: int = 1_000
    # run
    seed: int = 0
    # several independent runs trained at once, one per seed, stacked on the task dimension (``train.SeedStates``);
    # empty: the one run of ``seed``. Each seed's run computes what ``alone(seed)`` computes.
    seeds: tuple[int, ...] = ()
    device: str = "cpu"
    # cuDNN (GPU only): False autotunes its convolution algorithms, as the official TensorFlow code does, which is
    # fastest; True takes its deterministic ones, so a GPU run repeats bit for bit, at some cost in speed (see
    # results/gpu/throughput.json for measured costs: graphed vs graphed_autotune)
    deterministic: bool = False

    def __post_init__(self):
        self.seeds = tuple(self.seeds)  # a JSON round trip gives a list
        self.validate()

    def validate(self) -> None:
        """Reject bad input early, naming the parameter and the fix."""
        _choice("algorithm", self.algorithm, ALGORITHMS)
        _choice("inner_optimizer", self.inner_optimizer, INNER_OPTIMIZERS)
        _choice("outer_optimizer", self.outer_optimizer, OUTER_OPTIMIZERS)
        _choice("dataset", self.dataset, DATASETS)
        _choice("path", self.path, PATHS)
        _choice("inner_state", self.inner_state, INNER_STATES)
        for name in ("inner_lr", "meta_step_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 (got {getattr(self, name)!r})")
        if self.meta_step_size_final < 0:
            raise ValueError(f"meta_step_size_final must be >= 0 (got {self.meta_step_size_final!r})")
        for name in ("num_classes", "num_shots", "inner_batch_size", "inner_iters", "meta_batch_size",
                     "meta_iters", "eval_inner_iters", "eval_batch_size", "eval_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)!r})")
        if self.train_shots < 0:
            raise ValueError(f"train_shots must be >= 0, 0 meaning 'same as num_shots' (got {self.train_shots!r})")
        if any(not isinstance(s, int) or s < 0 for s in self.seeds) or len(set(self.seeds)) < len(self.seeds):
            raise ValueError(f"seeds must be distinct integers >= 0 (got {list(self.seeds)}): e.g. --seeds 0 1 2")
        if self.algorithm in ("fomaml", "maml") and self.inner_iters < 2:
            raise ValueError(f"inner_iters must be >= 2 for {self.algorithm}: k-1 inner steps, then the test batch")

    def replace(self, **changes) -> "Config":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields as plain values; ``seeds`` only where set, so a one-seed run's record is unchanged by it."""
        fields = dataclasses.asdict(self)
        if self.seeds:
            fields["seeds"] = list(self.seeds)
        else:
            del fields["seeds"]
        return fields

    def alone(self, seed: int) -> "Config":
        """One seed's run of a several-seed config, as if trained by itself."""
        return self.replace(seed=seed, seeds=())

    def meta_step_at(self, iteration: int) -> float:
        """Linear annealing of the official train.py: frac*final + (1-frac)*initial, frac = i / meta_iters."""
        frac = iteration / self.meta_iters
        return frac * self.meta_step_size_final + (1 - frac) * self.meta_step_size


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
