"""Mini-ImageNet (Vinyals et al. 2016; the Ravi & Larochelle 64/16/20 split) from whichever copy you have.

Accepted roots (docs/data.md §3.1), checked in this order:
1. the pickles ``mini-imagenet-cache-{train,val,test}.pkl`` (``image_data`` [n, 84, 84, 3] uint8 and
   ``class_dict`` {wnid: [indices]}); an HTML page saved under that name (a Google Drive quota page) is
   recognised and reported. Pickles can run code: we unpickle with an allow-list of NumPy array types only;
2. folders ``{train,val,test}/<wnid>/*.jpg`` (extension matched case-insensitively; the official ``.JPEG``-only
   filter finds nothing in the common 84x84 copies);
3. any number of zips whose members are ``<split>/<wnid>/<file>.jpg`` (e.g. ``train_part1.zip``).

Every image must already be 84x84 (the common copies are; we do not resize, so we never hide a wrong source),
is converted to RGB as the official loader does, and is stored as uint8 ``[classes, per_class, 3, 84, 84]``
decoded straight into one preallocated tensor: peak memory stays near the uint8 size (the pickle route needs a
second copy while it reorders). ``images / 255`` is the official RGB input in [0, 1] (no mean/std).
Classes are sorted by wnid and files by name (the official code lists class folders in ``os.listdir`` order,
which is arbitrary; the order only affects which random number picks which class).

Not offered: an automatic download (ImageNet terms forbid redistributing the images, the official byte-range URL
is dead), and a route from raw ILSVRC2012 train images through the Ravi CSVs: their file names
(``n0153282900000005.jpg``) carry an index whose mapping to ILSVRC file names (``n01532829_100.JPEG``) is not
published, and the tools that guess it depend on directory listing order, so we cannot claim the same images.
"""
from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import DATA_ENV, data_root
from ..tasks import ImageDataset
from .cache import cached, fingerprint, open_zip, safe_unpickle

SPLITS = ("train", "val", "test")
STANDARD_CLASSES = {"train": 64, "val": 16, "test": 20}
STANDARD_PER_CLASS = 600
SIZE = 84
SOURCE = "miniimagenet-v1"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
HELP = (f"Accepted layouts in that folder: {{train,val,test}}/<wnid>/*.jpg, zips with members <split>/<wnid>/<file>.jpg, "
        f"or mini-imagenet-cache-{{train,val,test}}.pkl. The images are ImageNet-derived and not downloaded "
        f"automatically: get an 84x84 copy of the Ravi & Larochelle split (e.g. the pickles of Ren et al. 2018 or "
        f"the folders made by cbfinn/maml's proc_images.py) and pass root= or set {DATA_ENV} to a folder holding "
        f"miniimagenet/.")


def standard_classes() -> dict[str, list[str]]:
    """The Ravi & Larochelle class lists (wnids), derived from their MIT-licensed split CSVs."""
    text = resources.files("reptile_edu").joinpath("resources/miniimagenet_classes.json").read_text()
    return json.loads(text)


def _pickle_path(root: Path, split: str) -> Path:
    return root / f"mini-imagenet-cache-{split}.pkl"


def scan(root) -> dict[str, dict[str, list[tuple[str, object]]]]:
    """Folders or zips: {split: {wnid: [(file name, reader), ...]}} for every split present."""
    root = Path(root)
    found: dict[str, dict[str, list]] = {}
    if any((root / s).is_dir() for s in SPLITS):
        for s in SPLITS:
            for f in sorted((root / s).glob("*/*")) if (root / s).is_dir() else ():
                if f.suffix.lower() in IMAGE_EXTENSIONS:
                    found.setdefault(s, {}).setdefault(f.parent.name, []).append((f.name, f))
        return found
    for path in sorted(root.glob("*.zip")):
        z = open_zip(path)
        for info in z.infolist():
            parts = info.filename.split("/")
            if len(parts) >= 3 and parts[-3] in SPLITS and Path(parts[-1]).suffix.lower() in IMAGE_EXTENSIONS:
                found.setdefault(parts[-3], {}).setdefault(parts[-2], []).append((parts[-1], (z, info)))
    return found


def counts(root) -> dict[str, tuple[int, int]]:
    """{split: (classes, images)} of a folder/zip root, without decoding anything."""
    return {s: (len(c), sum(map(len, c.values()))) for s, c in scan(root).items()}


def _read_one(name: str, reader) -> np.ndarray:
    if isinstance(reader, Path):
        data = reader.read_bytes()
    else:
        z, info = reader
        try:
            data = z.read(info)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ValueError(f"{z.filename}: cannot read {info.filename} ({exc}); the zip is damaged or "
                             f"truncated, copy it again") from exc
    return decode_one(name, data)


def decode_one(name: str, data: bytes) -> np.ndarray:
    """One encoded image as an RGB uint8 array [84, 84, 3]; any other size is an error naming the file."""
    img = Image.open(io.BytesIO(data))
    if img.size != (SIZE, SIZE):
        raise ValueError(f"{name} is {img.size[0]}x{img.size[1]}, expected {SIZE}x{SIZE}: use an 84x84 copy of the "
                         f"set (resize the originals to 84x84 first, e.g. with cbfinn/maml's proc_images.py)")
    return np.array(img.convert("RGB"))


def decode_files(classes: dict[str, list], allocate=None) -> dict:
    """``scan``'s classes of one split decoded into uint8 [classes, per_class, 3, 84, 84], classes sorted by name
    and files by name; ``allocate(shape)`` makes the tensor the pixels go into (default ``torch.empty``)."""
    names = sorted(classes)
    per_class = min(len(v) for v in classes.values())
    if len({len(v) for v in classes.values()}) > 1:
        warnings.warn(f"classes have {min(map(len, classes.values()))}..{max(map(len, classes.values()))} images; "
                      f"keeping the first {per_class} (by file name) of each", stacklevel=4)
    shape = (len(names), per_class, 3, SIZE, SIZE)
    images = allocate(shape) if allocate else torch.empty(shape, dtype=torch.uint8)

    def one_class(c):
        for i, (fname, reader) in enumerate(sorted(classes[names[c]], key=lambda f: f[0])[:per_class]):
            images[c, i] = torch.from_numpy(_read_one(f"{names[c]}/{fname}", reader)).permute(2, 0, 1)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # Pillow releases the GIL
        list(pool.map(one_class, range(len(names))))
    return {"images": images, "names": names}


def _decode_pickle(path: Path) -> dict:
    raw = safe_unpickle(path, "a Mini-ImageNet cache")
    data, class_dict = raw["image_data"], raw["class_dict"]
    if data.dtype != np.uint8 or data.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(f"{path}: image_data is {data.dtype} {data.shape}, expected uint8 [n, 84, 84, 3]")
    names = sorted(class_dict)
    per_class = min(len(class_dict[n]) for n in names)
    index = torch.tensor([list(class_dict[n])[:per_class] for n in names], dtype=torch.long)
    images = torch.from_numpy(data)[index].permute(0, 1, 4, 2, 3).contiguous()
    return {"images": images, "names": names}


def _decode_split(root: Path, split: str) -> dict:
    """Scan a folder/zip root, check that splits have disjoint classes, decode one split."""
    found = scan(root)
    if split not in found:
        raise FileNotFoundError(f"Mini-ImageNet split {split!r} not found in {root} (found: "
                                f"{counts(root) or 'nothing'}). {HELP}")
    owners = {}
    for s, classes in found.items():
        for wnid in classes:
            if owners.setdefault(wnid, s) != s:
                raise ValueError(f"class {wnid} appears in both {owners[wnid]} and {s} in {root}: splits must "
                                 f"have disjoint classes; remove the misplaced folder")
    return decode_files(found[split])


def load_miniimagenet(root=None, split: str = "train", standard: bool = False, cache_dir=None) -> ImageDataset:
    """One Mini-ImageNet split as an ``ImageDataset`` (decoded once, then memory-mapped from the cache).

    ``standard=True`` (a run that claims the paper's benchmark) requires the Ravi & Larochelle classes with
    600 images each; otherwise other counts load with a warning that states them (subsets, the test fixture).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)} (got {split!r})")
    root = Path(root) if root is not None else data_root() / "miniimagenet"
    if not root.is_dir():
        raise FileNotFoundError(f"Mini-ImageNet not found: {root} does not exist. {HELP}")
    pkl = _pickle_path(root, split)
    if pkl.is_file():
        data = cached(SOURCE + "-pkl", fingerprint([pkl]), lambda: _decode_pickle(pkl), cache_dir)
    else:
        if (root / split).is_dir():
            sources = [root / split]
        elif any((root / s).is_dir() for s in SPLITS) or not any(root.glob("*.zip")):
            raise FileNotFoundError(f"Mini-ImageNet split {split!r} not found in {root} (found: "
                                    f"{counts(root) or 'nothing'}). {HELP}")
        else:
            sources = sorted(root.glob("*.zip"))
        # the cache is keyed by the sources' content, so the scan and checks below run only when decoding
        data = cached(SOURCE, f"{fingerprint(sources)}-{split}", lambda: _decode_split(root, split), cache_dir)
    images, names = data["images"], data["names"]
    _check_counts(split, names, images.shape[1], standard, root)
    return ImageDataset(images, list(names), f"miniimagenet/{split}")


def _check_counts(split, names, per_class, standard, root):
    expected = STANDARD_CLASSES[split]
    if len(names) == expected and per_class == STANDARD_PER_CLASS and names == standard_classes()[split]:
        return
    msg = (f"Mini-ImageNet {split} in {root} has {len(names)} classes x {per_class} images; the standard "
           f"Ravi & Larochelle split has {expected} x {STANDARD_PER_CLASS}")
    if len(names) == expected and names != standard_classes()[split]:
        msg += " and other classes"
    if standard:
        raise ValueError(msg + ": a run claiming the standard benchmark needs the full split (standard=True); "
                               "point root at a complete copy or pass standard=False for a subset")
    warnings.warn(msg + ": fine for tests and smoke runs, not for reproducing the paper", stacklevel=3)
