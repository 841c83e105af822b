"""Results files (``results/NAME.json``, interfaces.md section 6): written by ``eval``, never by hand.

Every number carries its provenance: the schedule actually run, the device, torch version, commit and seed.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import torch

from .utils import write_json

TOP_KEYS = ("preset", "algorithm", "path", "meta_iters_run", "meta_iters_schedule", "train_wall_s", "device",
            "torch", "commit", "seed", "checkpoint", "evaluations")
EVAL_KEYS = ("ways", "shots", "mode", "tasks", "accuracy", "ci95", "eval_seed", "eval_wall_s")
MODES = ("transductive", "non-transductive")


def device_name(device: str | torch.device = "cpu") -> str:
    """``NVIDIA H100 80GB HBM3`` on a GPU; the CPU model (or ``cpu``) otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "cpu: " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu: " + (platform.processor() or platform.machine())


COMMIT_ENV = "REPTILE_EDU_COMMIT"


def commit() -> str:
    """``$REPTILE_EDU_COMMIT`` where the sender of a copied tree set it (a GPU machine's copy may carry a stale
    ``.git``), else the checkout's short commit hash (``+dirty`` for uncommitted changes), else ``unknown``."""
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV]
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_results(path, record: dict) -> None:
    """Validate and write one results file."""
    validate(record, str(path))
    write_json(path, record)


def read_results(path) -> dict:
    """Read and validate a results file; a malformed one is an error that names the file and the problem."""
    try:
        record = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"results file {path} is not valid JSON ({exc})") from None
    validate(record, str(path))
    return record


def validate(record: dict, where: str = "results") -> None:
    missing = [k for k in TOP_KEYS if k not in record]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    for i, e in enumerate(record["evaluations"]):
        gone = [k for k in EVAL_KEYS if k not in e]
        if gone:
            raise ValueError(f"{where}: evaluation {i} misses keys {gone}")
        if e["mode"] not in MODES:
            raise ValueError(f"{where}: evaluation {i} has mode {e['mode']!r}, expected one of {MODES}")
        if not (0 <= e["accuracy"] <= 100 and e["ci95"] >= 0 and e["tasks"] >= 1):
            raise ValueError(f"{where}: evaluation {i} has impossible values (accuracy and ci95 are in percent)")
