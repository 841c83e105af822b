"""What one meta-iteration costs: seconds, and the memory second-order MAML keeps that first-order methods free.

What k means (the package's convention, ``meta.py``): every algorithm gets k minibatches per task and computes
k loss gradients, one per minibatch, so a row of the cost table compares equal numbers of gradient evaluations.
  * Reptile: k SGD steps, d = adapted - phi. k = 1 is joint training.
  * FOMAML: k-1 SGD steps, then the gradient on the k-th minibatch at the adapted weights (needs k >= 2).
  * MAML: the same k-1 steps kept in the autograd graph (``create_graph``), then the k-th minibatch's gradient
    differentiated back through them (needs k >= 2). The extra cost is that backward pass through the chain
    and the graph it needs, which grows with k.
All three use the SGD inner loop here (second-order MAML is offered with SGD only).

Memory, measured two ways, because a CPU has no allocator counter like ``torch.cuda.max_memory_allocated``:
  * ``saved_peak_bytes`` (headline): the peak, over the meta-step, of the bytes the autograd graph holds for
    backward, counted by ``torch.autograd.graph.saved_tensors_hooks`` with each storage counted once while any
    graph node still holds it. Exact, deterministic and identical on any device; it is the quantity that makes
    MAML's memory grow with k. It leaves out transient buffers (gradients, workspace), so it is a lower bound.
  * ``rss_delta_bytes`` (cross-check): the peak resident-set growth of a fresh process over one meta-step
    (the high-water mark VmHWM, reset after a warm-up step at the smallest k and ``malloc_trim``, minus the RSS
    before). Includes everything (gradients, temporaries, allocator slack), but also malloc's habits, so it is
    noisy at small sizes.
"""
from __future__ import annotations

import ctypes
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import meta
from .config import COMPARED
from .models import OmniglotCNN, Params, SineMLP

MIN_K = {"reptile": 1, "fomaml": 2, "maml": 2}


class SavedTensorMeter:
    """Context manager: live and peak bytes of tensors saved for backward, each storage counted once."""

    def __init__(self):
        self.live = 0
        self.peak = 0
        self._refs: dict[int, list] = {}  # storage pointer -> [nbytes, holders]

    def _pack(self, tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        entry = self._refs.setdefault(key, [storage.nbytes(), 0])
        if entry[1] == 0:
            self.live += entry[0]
            self.peak = max(self.peak, self.live)
        entry[1] += 1
        return _Saved(tensor, key, self)

    def _release(self, key):
        entry = self._refs[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self._refs[key]

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda saved: saved.tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)


class _Saved:
    """What the graph stores instead of the tensor; when the graph frees it, the meter hears of it."""
    __slots__ = ("tensor", "key", "meter")

    def __init__(self, tensor, key, meter):
        self.tensor, self.key, self.meter = tensor, key, meter

    def __del__(self):
        self.meter._release(self.key)


def check_k(algorithm: str, k: int) -> None:
    if algorithm not in MIN_K:
        raise ValueError(f"algorithm must be one of {', '.join(COMPARED)} (got {algorithm!r})")
    if k < MIN_K[algorithm]:
        raise ValueError(f"k={k} is too small for {algorithm}: it needs k >= {MIN_K[algorithm]} minibatches "
                         f"(k-1 inner steps, then the test batch)")


def omniglot_problem(k: int, meta_batch_size: int = 5, inner_batch_size: int = 10, num_classes: int = 5,
                     seed: int = 0):
    """The Omniglot net, its seeded initialisation and k minibatches of random binary 28x28 images.

    Cost does not depend on pixel values, so random images keep the benchmark free of the dataset.
    """
    gen = torch.Generator().manual_seed(seed)
    model = OmniglotCNN(num_classes)
    phi = model.init_params(gen)
    T, B = meta_batch_size, inner_batch_size
    batches = [((torch.rand(T, B, 1, 28, 28, generator=gen) > 0.5).float(),
                torch.arange(B).remainder(num_classes).expand(T, B).clone()) for _ in range(k)]
    return model, phi, batches


class AutogradOnly:
    """A model seen without its hand-written backward, so that first-order steps build an autograd graph too
    (the sine MLP's own ``loss_and_grads`` keeps no graph at all, which would make the comparison trivial)."""

    def __init__(self, model):
        self.model = model

    def init_params(self, generator=None) -> Params:
        return self.model.init_params(generator)

    def forward(self, params: Params, x):
        return self.model.forward(params, x)

    def loss(self, params: Params, x, y):
        return self.model.loss(params, x, y)


def sine_problem(k: int, meta_batch_size: int = 2, inner_batch_size: int = 10, hidden: int = 16, seed: int = 0):
    """A tiny MLP (autograd only) and k random minibatches: the unit tests' model."""
    gen = torch.Generator().manual_seed(seed)
    model = AutogradOnly(SineMLP(hidden))
    phi = model.init_params(gen)
    T, B = meta_batch_size, inner_batch_size
    batches = [(torch.rand(T, B, 1, generator=gen) * 10 - 5, torch.randn(T, B, 1, generator=gen)) for _ in range(k)]
    return model, phi, batches


def _step(algorithm, model, phi: Params, batches, lr):
    return meta.meta_step(algorithm, model, phi, batches, "sgd", lr, path="vectorised", carry=False)


def saved_peak_bytes(algorithm: str, model, phi: Params, batches, lr: float = 1e-3) -> int:
    """Peak bytes the autograd graph holds during one meta-step (see the module docstring)."""
    check_k(algorithm, len(batches))
    with SavedTensorMeter() as meter:
        _step(algorithm, model, phi, batches, lr)
    return meter.peak


def seconds_per_step(algorithm: str, model, phi: Params, batches, lr: float = 1e-3, repeats: int = 3) -> dict:
    """Median (and all) wall seconds of one meta-step after one warm-up call, on the same batches."""
    check_k(algorithm, len(batches))
    _step(algorithm, model, phi, batches, lr)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _step(algorithm, model, phi, batches, lr)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "times_s": times}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    """This process's own high-water mark (VmHWM). Not ``ru_maxrss``: Linux carries that across fork and exec,
    so a child started by a parent that once held 200 MB reports at least 200 MB (it did, here)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5": reset the high-water mark to the current RSS
        f.write("5")


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the baseline is a little higher, the delta a little lower
        pass


def rss_child(algorithm: str, k: int, meta_batch_size: int) -> None:
    """Run in a fresh process: print the peak RSS growth (bytes) over one Omniglot meta-step, as JSON."""
    torch.set_num_threads(1)
    # Warm up at the smallest k: faults in library code and kernels, whose pages would otherwise be counted.
    model, phi, batches = omniglot_problem(MIN_K[algorithm], meta_batch_size)
    _step(algorithm, model, phi, batches, 1e-3)
    model, phi, batches = omniglot_problem(k, meta_batch_size)
    gc.collect()
    _malloc_trim()  # hand freed heap pages back to the OS, so the baseline is what is really in use
    _reset_peak_rss()
    before = _rss_bytes()
    _step(algorithm, model, phi, batches, 1e-3)
    print(json.dumps({"rss_delta_bytes": _peak_rss_bytes() - before}))


def rss_delta_bytes(algorithm: str, k: int, meta_batch_size: int = 5) -> int | None:
    """Peak RSS growth of one meta-step in a fresh subprocess (Linux only; None where /proc is missing)."""
    check_k(algorithm, k)
    if not sys.platform.startswith("linux"):
        return None
    code = f"from reptile_edu.costs import rss_child; rss_child({algorithm!r}, {k}, {meta_batch_size})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["rss_delta_bytes"]


def cost_rows(ks=(1, 2, 5, 10, 20), algorithms=COMPARED, meta_batch_size: int = 5, repeats: int = 3,
              rss: bool = True, log=None) -> list[dict]:
    """One row per (algorithm, k) on the Omniglot net: seconds per meta-step and memory.

    Pairs an algorithm cannot run (k < 2 for MAML and FOMAML) are left out.
    """
    rows = []
    for k in ks:
        model, phi, batches = omniglot_problem(k, meta_batch_size)
        for alg in algorithms:
            if k < MIN_K[alg]:
                continue
            row = {"algorithm": alg, "k": k, "gradient_evaluations": k, "meta_batch_size": meta_batch_size,
                   "saved_peak_bytes": saved_peak_bytes(alg, model, phi, batches),
                   **seconds_per_step(alg, model, phi, batches, repeats=repeats),
                   "rss_delta_bytes": rss_delta_bytes(alg, k, meta_batch_size) if rss else None}
            rows.append(row)
            if log:
                log(row)
    return rows


def load_results(folder) -> dict:
    """``results/costs/*.json`` as {"devices": {device: cost file}, "accuracy": accuracy file or None}."""
    folder = Path(folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no results in {folder}: run `python benchmarks/costs.py` (and costs_accuracy.py)")
    loaded = {p.stem: json.loads(p.read_text()) for p in files}
    accuracy = loaded.pop("accuracy", None)
    return {"devices": {data["device"]: data for data in loaded.values()}, "accuracy": accuracy}


def takeaway_table(cost: dict, accuracy: dict | None, k: int = 5) -> list[dict]:
    """Per algorithm: time and graph memory at ``k`` relative to Reptile, their growth from the smallest k
    to the largest, and what each reached at equal compute (sine MSE, Omniglot 5-shot transductive)."""
    rows = {(r["algorithm"], r["k"]): r for r in cost["rows"]}
    ks = sorted({r["k"] for r in cost["rows"] if r["algorithm"] == "maml"})
    base = rows[("reptile", k)]
    sine = {s["algorithm"]: s for s in accuracy["sine"]} if accuracy else {}
    omni = {o["algorithm"]: o for o in accuracy["omniglot"]} if accuracy else {}
    table = []
    for alg in COMPARED:
        r, lo, hi = rows[(alg, k)], rows[(alg, ks[0])], rows[(alg, ks[-1])]
        entry = {"algorithm": alg, "k": k, "s_per_iter": r["median_s"], "time_vs_reptile": r["median_s"] /
                 base["median_s"], "graph_mb": r["saved_peak_bytes"] / 2**20,
                 "graph_vs_reptile": r["saved_peak_bytes"] / base["saved_peak_bytes"],
                 f"graph_growth_k{ks[0]}_to_k{ks[-1]}": hi["saved_peak_bytes"] / lo["saved_peak_bytes"]}
        if accuracy:
            entry["sine_mse"] = sine[alg]["mse"] if alg in sine else None
            entry["omniglot_5shot"] = omni[alg]["5shot"]["transductive"]["accuracy"] if alg in omni else None
        table.append(entry)
    return table


def format_takeaway(table: list[dict]) -> str:
    """The take-away table as aligned text."""
    growth = next(key for key in table[0] if key.startswith("graph_growth"))
    lines = [f"{'algorithm':10}{'s/iter':>9}{'x Reptile':>10}{'graph MB':>10}{'x Reptile':>10}"
             f"{growth.replace('graph_growth_', 'growth '):>18}{'sine MSE':>10}{'Omni 5-shot %':>15}"]
    for e in table:
        mse, acc = e.get("sine_mse"), e.get("omniglot_5shot")
        lines.append(f"{e['algorithm']:10}{e['s_per_iter']:>9.3f}{e['time_vs_reptile']:>10.1f}{e['graph_mb']:>10.1f}"
                     f"{e['graph_vs_reptile']:>10.1f}{e[growth]:>18.1f}"
                     f"{'-' if mse is None else f'{mse:.3f}':>10}{'-' if acc is None else f'{acc:.1f}':>15}")
    return "\n".join(lines)
