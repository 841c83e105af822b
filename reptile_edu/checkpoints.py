"""The two kinds of checkpoint (docs/cli.md §2).

* Run checkpoint (``runs/NAME/checkpoint.pt``): a ``TrainState.state_dict()`` — everything needed to resume
  bit-exactly. Written atomically (temporary file + rename), so a run killed mid-save keeps the last good one.
* Shipped checkpoint (``reptile_edu/checkpoints/NAME.pt``, < 1 MB): the meta-weights, the inner Adam state that
  the official evaluation starts from, the config and provenance.

Both hold only tensors and plain Python values and are read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

import torch

from .results import atomic_write_bytes

RUN_FORMAT = "reptile_edu/run-checkpoint/1"
SHIPPED_FORMAT = "reptile_edu/shipped-checkpoint/1"
SHIPPED_DIR = Path(__file__).resolve().parent / "checkpoints"
# Fields that may change between a run and its resumption without changing what is computed.
RESUMABLE_DIFFERENCES = ("device", "deterministic")  # how a run executes, not what it computes


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: corrupt, truncated, of another kind, or of another run."""


class WrongKind(CheckpointError):
    """A readable checkpoint of the other kind (a shipped one where a run checkpoint was expected, or back)."""


def _save(path, obj) -> float:
    start = time.perf_counter()
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return time.perf_counter() - start


def _load(path, kind: str, fmt: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {kind} at {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or garbage files
        raise CheckpointError(f"{kind} {path} is corrupt or truncated ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:120]}); delete it and start again") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise WrongKind(f"{path} is not a reptile_edu {kind} (format {found!r}, expected {fmt!r})")
    return obj


def save_run(path, state_dict: dict) -> float:
    """Write a run checkpoint atomically; returns the seconds it took."""
    return _save(path, {"format": RUN_FORMAT, "state": state_dict})


def load_run(path, expected_config: dict | None = None) -> dict:
    """Read a run checkpoint's state dict, refusing one made for another run (other preset, architecture,
    schedule...): resuming must continue the same computation."""
    state = _load(path, "run checkpoint", RUN_FORMAT)["state"]
    if expected_config is not None:
        saved = state["config"]
        if list(saved.get("seeds", [])) != list(expected_config.get("seeds", [])):
            def seeds(c):
                return f"--seeds {' '.join(map(str, c['seeds']))}" if c.get("seeds") else f"one seed ({c.get('seed')})"
            raise CheckpointError(f"run checkpoint {path} holds {seeds(saved)}, this run asks for "
                                  f"{seeds(expected_config)}: resume with the same seeds, or use another --run-dir")
        diffs = [f"{k}: checkpoint {saved.get(k)!r} vs this run {v!r}" for k, v in expected_config.items()
                 if k not in RESUMABLE_DIFFERENCES and saved.get(k) != v]
        if diffs:
            raise CheckpointError(f"run checkpoint {path} belongs to another run ({'; '.join(diffs[:4])}); "
                                  f"use another --run-dir, or drop --resume to start a fresh run there")
    return state


def save_shipped(path, params: dict, inner_state: dict | None, config: dict, provenance: dict) -> float:
    """The exported model: weights, inner Adam state (second moments and step count), config, provenance."""
    obj = {"format": SHIPPED_FORMAT, "params": {k: v.detach().cpu().clone() for k, v in params.items()},
           "inner_state": None if inner_state is None else
           {"v": {k: v.detach().cpu().clone() for k, v in inner_state["v"].items()}, "t": inner_state["t"].cpu().clone()},
           "config": config, "provenance": provenance}
    return _save(path, obj)


def shipped_path(name_or_path) -> Path:
    """A shipped checkpoint's file: a path as given, or ``reptile_edu/checkpoints/NAME.pt`` for a bare name."""
    p = Path(name_or_path)
    return p if p.suffix == ".pt" or p.parent != Path(".") else SHIPPED_DIR / f"{name_or_path}.pt"


def load_shipped(name_or_path) -> dict:
    """Read a shipped checkpoint (by name or path) with ``weights_only=True``."""
    path = shipped_path(name_or_path)
    if not path.is_file():
        available = sorted(p.stem for p in SHIPPED_DIR.glob("*.pt"))
        raise FileNotFoundError(f"no shipped checkpoint at {path} (shipped: {', '.join(available) or 'none'}); "
                                f"train one with `python -m reptile_edu train` and `export` it")
    return _load(path, "shipped checkpoint", SHIPPED_FORMAT)
