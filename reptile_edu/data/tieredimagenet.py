"""tieredImageNet (Ren et al. 2018): 608 ImageNet classes grouped into 34 categories, split by category into
351 train, 97 validation and 160 test classes; 84x84 RGB images, 732 to 1,300 per class.

Accepted roots (docs/data.md §6), per split:
1. the standard release: ``{split}_images_png.pkl``, a pickled list of PNG-encoded images (one uint8 byte array
   each), and ``{split}_labels.pkl``, a dict with ``label_specific`` (the class of each image, 0..C-1),
   ``label_general`` (its category) and, where present, their names ``label_specific_str`` /
   ``label_general_str``. Unpickled with the same allow-list as Mini-ImageNet's pickles (NumPy arrays, dicts,
   lists, strings), so a pickle cannot run code;
2. folders ``{train,val,test}/<class>/*.jpg|png`` (as Mini-ImageNet's folder layout).

Colour: we decode the PNGs with Pillow, which gives RGB. The release's reference loader decodes them with OpenCV,
which returns the channels in BGR order, and models trained through it saw BGR; ours see RGB, as every other set
here.

Memory: the pixels are decoded into a file-backed tensor in the cache directory (``cache.scratch_uint8``) and each
PNG's bytes are dropped once decoded, so a decode holds at most the PNG bytes of the release (the pickle is read
whole: that is its format) plus a few images, never the decoded set; the cache file is then memory-mapped as
every other. The set is about 780,000 images, 16 GB as uint8; it is never held as floats.

Classes hold different numbers of images, and an ``ImageDataset`` holds the same number per class, so each class
keeps its first images in the release's order, as many as the smallest class has (a warning says how many are
left out). Tasks then draw from those.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..config import DATA_ENV, data_root
from ..tasks import ImageDataset
from .cache import cached, fingerprint, safe_unpickle, scratch_uint8
from .miniimagenet import SIZE, decode_files, decode_one, scan

SPLITS = ("train", "val", "test")
STANDARD_CLASSES = {"train": 351, "val": 97, "test": 160}
SOURCE = "tieredimagenet-v1"
HELP = (f"Accepted layouts in that folder: the release's {{split}}_images_png.pkl with {{split}}_labels.pkl, or "
        f"folders {{train,val,test}}/<class>/*.jpg|png. The images are ImageNet-derived and never downloaded "
        f"automatically: get the tieredImageNet release of Ren et al. 2018 yourself and pass root= or set "
        f"{DATA_ENV} to a folder holding tieredimagenet/.")


def release_files(root: Path, split: str) -> tuple[Path, Path]:
    """The standard release's two files of a split: the PNG-encoded images and their labels."""
    return root / f"{split}_images_png.pkl", root / f"{split}_labels.pkl"


def _labels(path: Path, count: int) -> tuple[np.ndarray, list[str]]:
    """The class of each image and the class names, checked against the number of images."""
    raw = safe_unpickle(path, "a tieredImageNet labels file")
    if not isinstance(raw, dict) or "label_specific" not in raw:
        raise ValueError(f"{path} has no 'label_specific' entry: not a tieredImageNet labels file; copy it again")
    labels = np.asarray(raw["label_specific"]).astype(np.int64).reshape(-1)
    if len(labels) != count:
        raise ValueError(f"{path} labels {len(labels)} images but its images file holds {count}: the two files are "
                         f"of different splits or one is truncated; copy both again")
    classes = int(labels.max()) + 1 if len(labels) else 0
    if len(labels) and (labels.min() < 0 or len(np.unique(labels)) != classes):
        raise ValueError(f"{path}: class labels must be 0..C-1 with every class present (found "
                         f"{len(np.unique(labels))} distinct labels from {labels.min()} to {labels.max()})")
    names = [str(n) for n in raw.get("label_specific_str", [])]
    if len(names) != classes:
        names = [f"class{c:03d}" for c in range(classes)]
    return labels, names


def _decode_release(images_path: Path, labels_path: Path, cache_dir) -> dict:
    encoded = safe_unpickle(images_path, "a tieredImageNet images file")
    if not isinstance(encoded, (list, np.ndarray)):
        raise ValueError(f"{images_path} holds a {type(encoded).__name__}, not a list of PNG-encoded images")
    encoded = list(encoded)
    labels, names = _labels(labels_path, len(encoded))
    members = [np.flatnonzero(labels == c) for c in range(len(names))]  # release order within each class
    sizes = [len(m) for m in members]
    per_class = min(sizes)
    if len(set(sizes)) > 1:
        warnings.warn(f"{images_path.name}: classes hold {per_class}..{max(sizes)} images; keeping the first "
                      f"{per_class} of each ({sum(sizes) - per_class * len(sizes):,} of {sum(sizes):,} left out)",
                      stacklevel=4)
    images = scratch_uint8((len(names), per_class, 3, SIZE, SIZE), cache_dir)
    for c, member in enumerate(members):
        for i, index in enumerate(member):
            if i < per_class:
                pixels = decode_one(f"{images_path.name} image {index}", np.asarray(encoded[index]).tobytes())
                images[c, i] = torch.from_numpy(pixels).permute(2, 0, 1)
            encoded[index] = None  # its bytes are no longer needed
    return {"images": images, "names": names}


def load_tieredimagenet(root=None, split: str = "train", standard: bool = False, cache_dir=None) -> ImageDataset:
    """One tieredImageNet split as an ``ImageDataset`` (decoded once, then memory-mapped from the cache).

    ``standard=True`` requires the standard class count (351 / 97 / 160); otherwise other counts load with a
    warning that states them (subsets, test fixtures).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)} (got {split!r})")
    root = Path(root) if root is not None else data_root() / "tieredimagenet"
    if not root.is_dir():
        raise FileNotFoundError(f"tieredImageNet not found: {root} does not exist. {HELP}")
    images_path, labels_path = release_files(root, split)
    if images_path.is_file() or labels_path.is_file():
        missing = [p.name for p in (images_path, labels_path) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"tieredImageNet {split} in {root} lacks {', '.join(missing)}: the release "
                                    f"needs both files of a split. {HELP}")
        build = lambda: _decode_release(images_path, labels_path, cache_dir)  # noqa: E731
        data = cached(SOURCE + "-pkl", fingerprint([images_path, labels_path]), build, cache_dir)
    elif (root / split).is_dir():
        classes = scan(root).get(split)
        if not classes:
            raise FileNotFoundError(f"tieredImageNet {split}: no <class>/*.jpg|png images in {root / split}. {HELP}")
        build = lambda: decode_files(classes, lambda shape: scratch_uint8(shape, cache_dir))  # noqa: E731
        data = cached(SOURCE, f"{fingerprint([root / split])}-{split}", build, cache_dir)
    else:
        present = [s for s in SPLITS if release_files(root, s)[0].is_file() or (root / s).is_dir()]
        raise FileNotFoundError(f"tieredImageNet split {split!r} not found in {root} (splits found: "
                                f"{', '.join(present) or 'none'}). {HELP}")
    images, names = data["images"], list(data["names"])
    expected = STANDARD_CLASSES[split]
    if len(names) != expected:
        msg = (f"tieredImageNet {split} in {root} has {len(names)} classes; the standard split has {expected}")
        if standard:
            raise ValueError(msg + ": a run claiming the standard benchmark needs the full split (standard=True)")
        warnings.warn(msg + ": fine for tests and smoke runs, not for reproducing published numbers", stacklevel=2)
    return ImageDataset(images, names, f"tieredimagenet/{split}")
