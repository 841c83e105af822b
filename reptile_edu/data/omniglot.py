"""Omniglot (Lake et al. 2015) exactly as supervised-reptile prepares it, from the original zips or folders.

Accepted roots (docs/data.md §2.1), per set (``images_background``, ``images_evaluation``): the extracted
folder ``<root>/<set>/``, the zip ``<root>/<set>.zip``, or the same under ``<root>/omniglot-py/`` (torchvision's
root; we read it ourselves because torchvision's md5 check rejects rebuilt archives).

``benchmark="reptile"`` (the paper's): both sets merged, 1,623 characters in ``read_dataset`` order (alphabets
sorted, then ``character*`` folders sorted, plain Python string order over both sets together), Python
``random.seed(0); random.shuffle`` of that list, first 1,200 train, 423 test. Train characters become four
classes each (rotations 0/90/180/270, official ``augment_dataset`` order): 4,800 classes. Test is not rotated.
``benchmark="background-evaluation"``: Lake's own split (964 background / 659 evaluation characters), offered
for comparison with other papers and NOT the Reptile paper's split; rotations the same way on train only.

Pixels: official ``Image.open(p).resize((28, 28)).rotate(rot)`` then ``float32`` of the mode "1" image, so
background 1.0, ink 0.0. We pass ``Image.NEAREST`` explicitly (what Pillow always uses for mode "1", and what
the official Pillow 4 used by default) and store 0/255 as uint8, so ``images / 255`` is the official input.
``torch.rot90`` reproduces ``Image.rotate`` by multiples of 90 pixel for pixel (tested).
"""
from __future__ import annotations

import io
import random
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import DATA_ENV, data_root
from ..tasks import ImageDataset
from .cache import cached, fingerprint, open_zip

SETS = ("images_background", "images_evaluation")
BENCHMARKS = ("reptile", "background-evaluation")
ROTATIONS = (0, 90, 180, 270)
NUM_TRAIN = 1200
IMAGE_SIZE = 28
SOURCE = "omniglot-v1"  # bump when decoding changes, so old caches are never reused


def _missing(root: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"Omniglot not found: {what} in {root}. Run `python -m reptile_edu download omniglot` (fetches "
        f"https://github.com/brendenlake/omniglot/raw/master/python/images_background.zip and images_evaluation.zip), "
        f"or put those zips (or their extracted folders) in that folder, or set {DATA_ENV} to a folder holding omniglot/.")


def locate(root) -> dict[str, Path]:
    """Where each of the two sets is: an extracted folder or a zip, under ``root`` or ``root/omniglot-py``."""
    root = Path(root)
    if not root.exists():
        raise _missing(root, "the folder does not exist")
    found = {}
    for name in SETS:
        for base in (root, root / "omniglot-py"):
            if (base / name).is_dir():
                found[name] = base / name
                break
            if (base / f"{name}.zip").is_file():
                found[name] = base / f"{name}.zip"
                break
        else:
            raise _missing(root, f"neither {name}/ nor {name}.zip")
    return found


def _characters(path: Path) -> dict[tuple[str, str], list[tuple[str, object]]]:
    """{(alphabet, character): [(file name, reader), ...]} for one set, from a folder or a zip."""
    chars: dict[tuple[str, str], list] = {}
    if path.is_dir():
        for f in path.glob("*/character*/*.png"):
            chars.setdefault((f.parent.parent.name, f.parent.name), []).append((f.name, f))
        return chars
    z = open_zip(path)
    for info in z.infolist():
        parts = info.filename.rstrip("/").split("/")
        if len(parts) >= 3 and parts[-1].endswith(".png") and parts[-2].startswith("character"):
            chars.setdefault((parts[-3], parts[-2]), []).append((parts[-1], (z, info)))
    return chars


def _read(reader) -> bytes:
    if isinstance(reader, Path):
        return reader.read_bytes()
    z, info = reader
    try:
        return z.read(info)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"{z.filename}: cannot read {info.filename} ({exc}); the zip is damaged or truncated, "
                         f"download it again") from exc


def decode(root) -> dict:
    """All 1,623 characters in ``read_dataset`` order as uint8 ``[chars, 20, 1, 28, 28]`` (0 ink, 255 background)."""
    located = locate(root)
    chars = {}
    for name, path in located.items():
        for key, files in _characters(path).items():
            chars[(name, *key)] = files
    order = sorted(chars, key=lambda k: (k[1], k[2]))  # alphabets sorted over both sets together, then characters
    if not order:
        raise _missing(Path(root), "no <Alphabet>/character*/*.png images")
    per_class = {len(chars[k]) for k in order}
    if len(per_class) != 1:
        raise ValueError(f"Omniglot characters in {root} have different image counts {sorted(per_class)}; "
                         f"every character must have 20 drawings: re-extract or re-download the zips")
    images = torch.empty(len(order), per_class.pop(), 1, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
    for c, key in enumerate(order):
        for i, (fname, reader) in enumerate(sorted(chars[key], key=lambda f: f[0])):
            img = Image.open(io.BytesIO(_read(reader)))
            if img.size != (105, 105):
                raise ValueError(f"{fname} in {key} is {img.size[0]}x{img.size[1]}, Omniglot drawings are 105x105: "
                                 f"this is not the original Omniglot; use the original zips")
            small = np.asarray(img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.NEAREST))
            images[c, i, 0] = torch.from_numpy(small.astype(np.uint8) * 255 if small.dtype == bool else small)
    return {"images": images, "sets": [k[0] for k in order], "names": [f"{k[1]}/{k[2]}" for k in order]}


def reptile_split(num_characters: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """The official split: ``random.seed(seed)`` then ``random.shuffle`` of the character list, first 1,200
    train. Uses its own ``random.Random``, which gives the same stream as the seeded global one."""
    order = list(range(num_characters))
    random.Random(seed).shuffle(order)
    return order[:NUM_TRAIN], order[NUM_TRAIN:]


def rotate_classes(images: torch.Tensor, rotations=ROTATIONS) -> torch.Tensor:
    """[C, P, 1, H, W] -> [C * len(rotations), P, 1, H, W]; class ``len(rotations) * c + r`` is ``c`` rotated by
    ``rotations[r]`` degrees counter-clockwise (official ``augment_dataset`` order, ``PIL.Image.rotate``)."""
    out = torch.empty(images.shape[0], len(rotations), *images.shape[1:], dtype=images.dtype)
    for r, rot in enumerate(rotations):
        out[:, r] = torch.rot90(images, rot // 90, dims=(-2, -1))
    return out.flatten(0, 1)


def load_omniglot(root=None, split: str = "train", benchmark: str = "reptile", cache_dir=None,
                  rotate: bool | None = None, seed: int = 0) -> ImageDataset:
    """One Omniglot split as an ``ImageDataset``; decodes once into the cache, later loads take milliseconds.

    ``root`` defaults to ``data_root()/"omniglot"``. ``rotate`` defaults to True for train, False for test
    (the paper never rotates test classes). ``seed`` is the official ``--seed`` that drives the split.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test' (got {split!r}); Omniglot has no validation split "
                         f"in the Reptile protocol")
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)} (got {benchmark!r})")
    root = Path(root) if root is not None else data_root() / "omniglot"
    located = locate(root)
    data = cached(SOURCE, fingerprint(located.values()), lambda: decode(root), cache_dir)
    images, names, sets = data["images"], data["names"], data["sets"]
    if len(names) != 1623:
        warnings.warn(f"{root} holds {len(names)} Omniglot characters, not 1,623: this is a subset, "
                      f"so the split is not the paper's", stacklevel=2)
    if benchmark == "reptile":
        chosen = reptile_split(len(names), seed)[split == "test"]
    else:
        chosen = [i for i, s in enumerate(sets) if s == SETS[split == "test"]]
    index = torch.tensor(chosen, dtype=torch.long)
    rotations = ROTATIONS if (split == "train" if rotate is None else rotate) else (0,)
    split_images = rotate_classes(images[index], rotations) if rotations != (0,) else images[index]
    class_names = [f"{names[i]}@{rot}" if len(rotations) > 1 else names[i] for i in chosen for rot in rotations]
    tag = "" if benchmark == "reptile" else "-bgeval"
    return ImageDataset(split_images.contiguous(), class_names, f"omniglot{tag}/{split}", tuple(rotations))
