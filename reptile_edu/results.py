"""Results files (``results/NAME.json``, docs/cli.md §3): written by ``eval``, never by hand; and where the
stored records the chapters show are found.

Every number carries its provenance: the schedule actually run, the device, torch version, commit and seed.
The records under ``results/`` (paper-run results, ablation grids, cost tables, throughput, training curves)
are package data too: a wheel installs them as ``reptile_edu/records/``, so a chapter opened from an installed
package (Colab) shows the same stored results as one opened in a checkout.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

from .config import MODES

TOP_KEYS = ("preset", "algorithm", "path", "meta_iters_run", "meta_iters_schedule", "train_wall_s", "device",
            "torch", "commit", "seed", "checkpoint", "evaluations")
EVAL_KEYS = ("ways", "shots", "mode", "tasks", "accuracy", "ci95", "eval_seed", "eval_wall_s")


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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it, so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())


PACKAGE_DIR = Path(__file__).resolve().parent
INSTALLED_DIR = PACKAGE_DIR / "records"  # pyproject.toml maps the checkout's results/ here in a wheel


def stored_dirs() -> list[Path]:
    """Where stored records are looked for: a checkout's ``results/`` (the newest, where ``eval`` writes),
    then the copy installed with the package."""
    checkout = PACKAGE_DIR.parent
    found = [checkout / "results"] if (checkout / "pyproject.toml").is_file() else []
    return [d for d in (*found, INSTALLED_DIR) if d.is_dir()]


def find(name: str = "") -> Path | None:
    """A stored record (a file or folder named relative to ``results/``, e.g. ``omniglot-5way-paper.json``,
    ``ablations``; ``""`` is the folder itself), in a checkout first, then in the installed package; None if
    neither has it."""
    for base in stored_dirs():
        if (base / name).exists():
            return base / name
    return None


def stored(name: str, read=None):
    """The chapters' one fallback for a stored record: ``read(path)`` (default: the JSON), or None after one
    printed note when it is missing, corrupt or of another schema, so that the cell goes on with what it can
    compute live."""
    path = find(name)
    if path is None:
        print(f"note: no stored record {name or 'folder'!r} in this installation; showing only what is computed here")
        return None
    try:
        return read(path) if read is not None else json.loads(path.read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"note: the stored record {name!r} cannot be used ({exc}); showing only what is computed here")
        return None


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
