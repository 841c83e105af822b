"""Shared test settings, datasets and helpers: every fixture a test module may need from another lives here, so
that no test module imports another (``test_packaging.py`` checks that).

- ``one_thread`` (autouse): torch on one thread.
- Tiny in-memory image sets and configs: ``tiny_omniglot``, ``tiny_config``, ``toy`` with ``ids``.
- ``killed_run``: a training run killed between two checkpoints, for the resume tests.
- Generated files in every accepted data layout (docs/data.md §2.1, §3.1), built where the test says (its
  ``tmp_path``): ``omniglot_members``, ``omniglot_root``, ``mini_classes``, ``mini_jpeg``, ``mini_members``,
  ``mini_root``, ``write_zip``, ``write_tree``.
- The real datasets, read from the data root as users' code reads them (``reptile_edu.config.data_root()``,
  i.e. ``$REPTILE_EDU_DATA``): ``real_data``. The root ``conftest.py`` points that variable at links to the
  team's copies where they exist; elsewhere the tests that need them skip and say what is missing.

Most are factory fixtures: they return a function, called with the sizes or paths the test wants
(``def test_x(write_zip): write_zip(path, members)``).
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reptile_edu.config import DATA_ENV, data_root
from reptile_edu.presets import preset
from reptile_edu.tasks import ImageDataset


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors on a 2-core machine (and two xdist workers in CI): extra OpenMP threads only spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------------------
# tiny in-memory image sets and configs


def _tiny_omniglot(classes=12, per_class=8, seed=0) -> ImageDataset:
    gen = torch.Generator().manual_seed(seed)
    images = (torch.rand(classes, per_class, 1, 28, 28, generator=gen) > 0.7).to(torch.uint8) * 255
    return ImageDataset(images, [f"c{i}" for i in range(classes)], "tiny/train")


@pytest.fixture(scope="session")
def tiny_omniglot():
    """``tiny_omniglot(classes=12, per_class=8, seed=0)``: random black-and-white 28x28 images as an Omniglot
    ``ImageDataset`` (uint8 0/255, named "tiny/train"); the same seed gives the same pixels."""
    return _tiny_omniglot


def _tiny_config(**kw):
    fields = dict(meta_iters=12, meta_batch_size=2, train_shots=3, inner_batch_size=5, inner_iters=2,
                  eval_inner_iters=3)
    return preset("omniglot-5way", "smoke", **{**fields, **kw})


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(**fields)``: the smoke-scale omniglot-5way preset shrunk to 12 meta-iterations of 2 tasks,
    3 train shots, 2 inner steps of 5 examples (and 3 at evaluation); ``fields`` override any of it."""
    return _tiny_config


def _toy(num_classes=30, per_class=12) -> ImageDataset:
    images = torch.zeros(num_classes, per_class, 1, 2, 2, dtype=torch.uint8)
    images[:, :, 0, 0, 0] = torch.arange(num_classes)[:, None]
    images[:, :, 0, 0, 1] = torch.arange(per_class)[None, :]
    return ImageDataset(images, [f"c{i}" for i in range(num_classes)], "toy")


def _ids(x):
    return torch.stack([x[..., 0, 0, 0], x[..., 0, 0, 1]], -1).mul(255).round().long()


@pytest.fixture(scope="session")
def toy():
    """``toy(num_classes=30, per_class=12)``: a 2x2-pixel ``ImageDataset`` whose pixels say where each example
    came from: pixel [0, 0, 0] = class, pixel [0, 0, 1] = image within the class (decode with ``ids``)."""
    return _toy


@pytest.fixture(scope="session")
def ids():
    """``ids(x)``: float pixels of ``toy`` examples ``[..., 1, 2, 2]`` back to their (class, image) ids
    ``[..., 2]``."""
    return _ids


# ---------------------------------------------------------------------------------------------------------------
# generated data files in every accepted layout


def _omniglot_png(seed: int) -> bytes:
    """A 105x105 mode-"1" PNG like Omniglot's: white background, a few black strokes."""
    rng = np.random.default_rng(seed)
    arr = np.ones((105, 105), dtype=bool)
    r, c = rng.integers(10, 80, size=2)
    arr[r:r + 20, c:c + 4] = False
    arr[r:r + 4, c:c + 25] = False
    buf = io.BytesIO()
    Image.fromarray(arr).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def _omniglot_members(alphabets=(("Alpha", 3), ("Beta", 2)), evaluation=(("Gamma", 2),), per_class=20):
    members, seed = {}, 0
    for set_name, alphas in (("images_background", alphabets), ("images_evaluation", evaluation)):
        for alphabet, n_chars in alphas:
            for c in range(1, n_chars + 1):
                for i in range(1, per_class + 1):
                    members[f"{set_name}/{alphabet}/character{c:02d}/{c:04d}_{i:02d}.png"] = _omniglot_png(seed)
                    seed += 1
    return members


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _write_tree(root: Path, members: dict[str, bytes]) -> Path:
    for name, data in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _omniglot_root(tmp_path: Path, layout: str, **kw) -> Path:
    members = _omniglot_members(**kw)
    root = tmp_path / f"omniglot-{layout}"
    if layout == "folders":
        return _write_tree(root, members)
    base = root / "omniglot-py" if layout == "torchvision" else root
    for set_name in ("images_background", "images_evaluation"):
        _write_zip(base / f"{set_name}.zip", {k: v for k, v in members.items() if k.startswith(set_name)})
    return root


def _mini_jpeg(seed: int, size=(84, 84)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


MINI_CLASSES = {"train": ["n00000001", "n00000002", "n00000003"], "val": ["n00000004", "n00000005"],
                "test": ["n00000006", "n00000007"]}


def _mini_members(per_class: int = 6, ext: str = ".jpg") -> dict[str, bytes]:
    members, seed = {}, 0
    for split, classes in MINI_CLASSES.items():
        for wnid in classes:
            for i in range(per_class):
                members[f"{split}/{wnid}/{wnid}{i:08d}{ext}"] = _mini_jpeg(seed)
                seed += 1
    return members


def _mini_root(tmp_path: Path, layout: str, per_class: int = 6) -> Path:
    root = tmp_path / f"mini-{layout}"
    if layout == "folders":
        return _write_tree(root, _mini_members(per_class, ".JPEG"))
    members = _mini_members(per_class)
    if layout == "zips":
        _write_zip(root / "train_part1.zip", {k: v for k, v in members.items() if "/n00000001/" in k})
        _write_zip(root / "train_part2.zip", {k: v for k, v in members.items()
                                              if k.startswith("train/") and "/n00000001/" not in k})
        _write_zip(root / "valtest.zip", {k: v for k, v in members.items() if not k.startswith("train/")})
        return root
    root.mkdir(parents=True)
    for split, classes in MINI_CLASSES.items():
        arrays, class_dict = [], {}
        for wnid in classes:
            class_dict[wnid] = list(range(len(arrays), len(arrays) + per_class))
            arrays += [np.asarray(Image.open(io.BytesIO(members[f"{split}/{wnid}/{wnid}{i:08d}.jpg"])))
                       for i in range(per_class)]
        with open(root / f"mini-imagenet-cache-{split}.pkl", "wb") as f:
            pickle.dump({"image_data": np.stack(arrays), "class_dict": class_dict}, f, protocol=4)
    return root


@pytest.fixture(scope="session")
def write_zip():
    """``write_zip(path, {member name: bytes})``: a zip holding those members (parent folders made); returns
    ``path``."""
    return _write_zip


@pytest.fixture(scope="session")
def write_tree():
    """``write_tree(root, {relative path: bytes})``: those files under ``root`` (folders made); returns ``root``."""
    return _write_tree


@pytest.fixture(scope="session")
def omniglot_members():
    """``omniglot_members(alphabets=(("Alpha", 3), ("Beta", 2)), evaluation=(("Gamma", 2),), per_class=20)``:
    {member path: png bytes} of a generated Omniglot, ``images_background/<alphabet>/characterNN/*.png`` and
    ``images_evaluation/...``, 105x105 mode-"1" PNGs; the same arguments give the same bytes."""
    return _omniglot_members


@pytest.fixture(scope="session")
def omniglot_root():
    """``omniglot_root(tmp_path, layout, **omniglot_members arguments)``: that Omniglot written to
    ``tmp_path/omniglot-<layout>`` in an accepted layout, ``"zips"``, ``"folders"`` or ``"torchvision"``
    (``omniglot-py/`` with the zips); returns the root."""
    return _omniglot_root


@pytest.fixture(scope="session")
def mini_classes():
    """{split: [wnid, ...]} of the generated Mini-ImageNet: 3 train, 2 val and 2 test classes."""
    return {split: list(classes) for split, classes in MINI_CLASSES.items()}


@pytest.fixture(scope="session")
def mini_jpeg():
    """``mini_jpeg(seed, size=(84, 84))``: the bytes of a random RGB JPEG (size is width x height)."""
    return _mini_jpeg


@pytest.fixture(scope="session")
def mini_members():
    """``mini_members(per_class=6, ext=".jpg")``: {``<split>/<wnid>/<wnid><8-digit index><ext>``: jpeg bytes}
    for every class of ``mini_classes``."""
    return _mini_members


@pytest.fixture(scope="session")
def mini_root():
    """``mini_root(tmp_path, layout, per_class=6)``: the generated Mini-ImageNet written to
    ``tmp_path/mini-<layout>`` as ``"folders"`` (``.JPEG`` extension, to check case-insensitivity), ``"zips"``
    (train in two parts, val and test in one) or ``"pkl"`` (the mini-imagenet-cache pickles); returns the root."""
    return _mini_root


# ---------------------------------------------------------------------------------------------------------------
# the real datasets, from the data root

# what each real dataset holds in ``data_root()/<dataset>``; a test that asks for one skips where any is missing
REAL_DATA = {
    "omniglot": ("images_background.zip", "images_evaluation.zip"),  # the whole set: 1,623 characters x 20
    "miniimagenet": ("full/train_part1.zip", "full/train_part2.zip", "full/val.zip", "full/test.zip",  # 60,000
                     "mini_imagenet_fixture_20per_class.zip"),  # and the first 20 images of every class
}


@pytest.fixture
def real_data():
    """``real_data(dataset)``: ``data_root()/<dataset>`` (``$REPTILE_EDU_DATA/<dataset>``) where it holds the
    real set (``REAL_DATA``); the test skips, saying what is missing, where it does not (a user's machine, CI
    without the team's data)."""
    def find(dataset: str) -> Path:
        root = data_root() / dataset
        missing = [name for name in REAL_DATA[dataset] if not (root / name).is_file()]
        if missing:
            pytest.skip(f"needs the real {dataset} data in the data root (${DATA_ENV}/{dataset}): "
                        f"{', '.join(missing)} not in {root}")
        return root
    return find


@pytest.fixture(scope="session")
def killed_run():
    """``killed_run(config, dataset, checkpoint)``: train ``config``, save a run checkpoint at iteration 4 to
    ``checkpoint``, die during iteration 6: what a run killed between two checkpoints leaves behind."""
    from reptile_edu import checkpoints, train

    def kill(config, dataset, checkpoint):
        def callback(event):
            if event["event"] == "step" and event["iteration"] == 4:
                checkpoints.save_run(checkpoint, event["state"].state_dict())
            if event["event"] == "step" and event["iteration"] == 5:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            train.meta_train(config, dataset=dataset, callback=callback)
    return kill
