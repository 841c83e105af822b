"""Where the chapters find image data, and generated stand-ins for machines without it.

The real sets live under the data root (``$REPTILE_EDU_DATA``, default ``~/.cache/reptile_edu/data``); Omniglot is
downloaded there on first use (checked), Mini-ImageNet never is. Without data, a generated stand-in in the
accepted layout keeps every cell running, and the notebook says its numbers mean nothing.
"""
from __future__ import annotations

import io
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..config import OFFLINE_ENV, data_root, offline


def find_data_root(dataset: str) -> Path | None:
    """``data_root()/<dataset>`` (``$REPTILE_EDU_DATA`` or the default root) if it holds anything, else None."""
    candidate = data_root() / dataset
    return candidate if candidate.is_dir() and any(candidate.iterdir()) else None


def write_tiny_omniglot(root, characters: int = 8, per_class: int = 20, seed: int = 0) -> Path:
    """Generated stand-in for Omniglot in the accepted zip layout (random strokes on white, 105x105 mode "1"):
    two background alphabets and one evaluation alphabet of ``characters`` characters each. Far fewer than
    1,623 characters, so load it with ``benchmark="background-evaluation"`` (the Reptile split's first 1,200
    would take them all). For machines without the data: every cell runs, but nothing learned means anything.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for set_name, alphabets in (("images_background", ("Alpha", "Beta")), ("images_evaluation", ("Gamma",))):
        with zipfile.ZipFile(root / f"{set_name}.zip", "w") as z:
            for alphabet in alphabets:
                for c in range(1, characters + 1):
                    strokes = rng.integers(10, 75, size=(3, 2))
                    for i in range(1, per_class + 1):
                        arr = np.ones((105, 105), dtype=bool)
                        for r, col in strokes + rng.integers(-3, 4, size=(3, 2)):
                            arr[r:r + 22, col:col + 5] = False
                        buf = io.BytesIO()
                        Image.fromarray(arr).convert("1").save(buf, format="PNG")
                        z.writestr(f"{set_name}/{alphabet}/character{c:02d}/{c:04d}_{i:02d}.png", buf.getvalue())
    return root


def omniglot_or_standin(splits=("train", "test")) -> tuple[Path, bool, tuple]:
    """The chapters' Omniglot: ``(root, real, datasets in splits order)``.

    The real set (``find_data_root``) on the paper's 1,200/423 split; if it is missing, it is downloaded into
    the data root first (checked, with a progress bar), unless ``REPTILE_EDU_OFFLINE`` is set. Failing that (one
    printed line says why), a stand-in from ``write_tiny_omniglot`` in a temporary folder on its
    background/evaluation split, with its expected "not 1,623 characters" warning silenced (``real`` is then
    False, and the notebook says so).
    """
    from .download import download_omniglot
    from .omniglot import load_omniglot

    root = find_data_root("omniglot")
    if root is None and offline():
        print(f"No Omniglot in {data_root() / 'omniglot'} and {OFFLINE_ENV} is set: using a generated stand-in.")
    elif root is None:
        print(f"No Omniglot in {data_root() / 'omniglot'}: downloading it there (about 15 MB, checked).")
        try:
            root = download_omniglot(data_root() / "omniglot", progress=True)
        except (OSError, ValueError) as exc:
            print(f"Download failed ({exc}): using a generated stand-in.")
    real = root is not None
    if not real:
        root = write_tiny_omniglot(Path(tempfile.mkdtemp()) / "omniglot")
    with warnings.catch_warnings():
        warnings.simplefilter("default" if real else "ignore")
        datasets = tuple(load_omniglot(root, split, benchmark="reptile" if real else "background-evaluation")
                         for split in splits)
    return root, real, datasets


def write_tiny_miniimagenet(root, classes=(6, 2, 5), per_class: int = 16, seed: int = 0) -> Path:
    """Generated stand-in for Mini-ImageNet as one zip of ``<split>/<wnid>/<file>.jpg`` (84x84 RGB noise with a
    per-class colour cast), for machines without the real images. The defaults are the least that the
    ``miniimagenet-5way`` preset can train on (5 ways, 15 training shots) and evaluate (5 test classes)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    wnid = 0
    with zipfile.ZipFile(root / "tiny_miniimagenet.zip", "w") as z:
        for split, count in zip(("train", "val", "test"), classes):
            for _ in range(count):
                wnid += 1
                cast = rng.integers(0, 128, size=3)
                for i in range(per_class):
                    img = (rng.integers(0, 128, size=(84, 84, 3)) + cast).astype(np.uint8)
                    buf = io.BytesIO()
                    Image.fromarray(img).save(buf, format="JPEG")
                    z.writestr(f"{split}/n{wnid:08d}/n{wnid:08d}_{i:04d}.jpg", buf.getvalue())
    return root




