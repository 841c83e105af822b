"""Tiny generated datasets in every accepted layout (docs/data.md §2.1, §3.1), built inside tmp_path."""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def omniglot_png(seed: int) -> bytes:
    """A 105x105 mode-"1" PNG like Omniglot's: white background, a few black strokes."""
    rng = np.random.default_rng(seed)
    arr = np.ones((105, 105), dtype=bool)
    r, c = rng.integers(10, 80, size=2)
    arr[r:r + 20, c:c + 4] = False
    arr[r:r + 4, c:c + 25] = False
    buf = io.BytesIO()
    Image.fromarray(arr).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def omniglot_members(alphabets=(("Alpha", 3), ("Beta", 2)), evaluation=(("Gamma", 2),), per_class=20):
    """{member path: png bytes} for images_background and images_evaluation."""
    members, seed = {}, 0
    for set_name, alphas in (("images_background", alphabets), ("images_evaluation", evaluation)):
        for alphabet, n_chars in alphas:
            for c in range(1, n_chars + 1):
                for i in range(1, per_class + 1):
                    members[f"{set_name}/{alphabet}/character{c:02d}/{c:04d}_{i:02d}.png"] = omniglot_png(seed)
                    seed += 1
    return members


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def write_tree(root: Path, members: dict[str, bytes]) -> Path:
    for name, data in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def omniglot_root(tmp_path: Path, layout: str, **kw) -> Path:
    """layout: 'zips', 'folders' or 'torchvision' (omniglot-py/ with zips)."""
    members = omniglot_members(**kw)
    root = tmp_path / f"omniglot-{layout}"
    if layout == "folders":
        return write_tree(root, members)
    base = root / "omniglot-py" if layout == "torchvision" else root
    for set_name in ("images_background", "images_evaluation"):
        write_zip(base / f"{set_name}.zip", {k: v for k, v in members.items() if k.startswith(set_name)})
    return root


def mini_jpeg(seed: int, size=(84, 84)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


MINI_CLASSES = {"train": ["n00000001", "n00000002", "n00000003"], "val": ["n00000004", "n00000005"],
                "test": ["n00000006", "n00000007"]}


def mini_members(per_class: int = 6, ext: str = ".jpg") -> dict[str, bytes]:
    members, seed = {}, 0
    for split, classes in MINI_CLASSES.items():
        for wnid in classes:
            for i in range(per_class):
                members[f"{split}/{wnid}/{wnid}{i:08d}{ext}"] = mini_jpeg(seed)
                seed += 1
    return members


def mini_root(tmp_path: Path, layout: str, per_class: int = 6) -> Path:
    """layout: 'folders' (.JPEG extension, to check case-insensitivity), 'zips' (train in two parts) or 'pkl'."""
    root = tmp_path / f"mini-{layout}"
    if layout == "folders":
        return write_tree(root, mini_members(per_class, ".JPEG"))
    members = mini_members(per_class)
    if layout == "zips":
        write_zip(root / "train_part1.zip", {k: v for k, v in members.items() if "/n00000001/" in k})
        write_zip(root / "train_part2.zip", {k: v for k, v in members.items()
                                             if k.startswith("train/") and "/n00000001/" not in k})
        write_zip(root / "valtest.zip", {k: v for k, v in members.items() if not k.startswith("train/")})
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
