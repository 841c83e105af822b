"""tieredImageNet from a generated fixture in exactly the release's format (``{split}_images_png.pkl``: a pickled
list of PNG bytes as uint8 arrays; ``{split}_labels.pkl``: label_specific, label_general and their names), and
from folders: decoded to RGB, classes in label order, cut to the smallest class, cached, and every malformed
input named in one line. No tieredImageNet is downloaded or committed: the test writes its own."""
import io
import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from reptile_edu.data.tieredimagenet import load_tieredimagenet

SPLIT_CLASSES = {"train": 4, "val": 2, "test": 3}


def _png(rgb: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)  # as the release stores each image


def _image(split_index: int, label: int, i: int) -> np.ndarray:
    """An 84x84 RGB image whose pixels say where it came from: red = label, green = image, blue = split."""
    rgb = np.zeros((84, 84, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10 * label + 1, i % 256, 100 + split_index
    rgb[:4, :4] = (255, 0, 0)  # a red corner: decoded in BGR order it would be blue
    return rgb


def write_release(root, sizes=None, labels_count_off=0):
    """The release's two pickles per split; ``sizes`` {split: images per class} (default 6, 7, 6, ...)."""
    root.mkdir(parents=True, exist_ok=True)
    for s, (split, classes) in enumerate(SPLIT_CLASSES.items()):
        per_class = (sizes or {}).get(split, [6 + (c % 2) for c in range(classes)])
        labels = np.concatenate([np.full(n, c) for c, n in enumerate(per_class)])
        order = np.random.default_rng(s).permutation(len(labels))  # the release interleaves classes
        labels = labels[order]
        counters = [0] * classes
        encoded = []
        for label in labels:
            encoded.append(_png(_image(s, label, counters[label])))
            counters[label] += 1
        with open(root / f"{split}_images_png.pkl", "wb") as f:
            pickle.dump(encoded, f, protocol=2)
        with open(root / f"{split}_labels.pkl", "wb") as f:
            pickle.dump({"label_specific": labels[:len(labels) - labels_count_off],
                         "label_general": labels // 2,
                         "label_specific_str": [f"n{split[:2]}{c:06d}" for c in range(classes)],
                         "label_general_str": [f"group{g}" for g in range(classes // 2 + 1)]}, f, protocol=2)
    return root


def _load(root, split, tmp_path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is not the standard split, as expected
        return load_tieredimagenet(root, split, cache_dir=tmp_path / "cache", **kw)


def test_the_release_decodes_to_rgb_classes_in_label_order(tmp_path):
    root = write_release(tmp_path / "tiered")
    for s, (split, classes) in enumerate(SPLIT_CLASSES.items()):
        data = _load(root, split, tmp_path)
        assert data.images.dtype == torch.uint8 and data.images.shape == (classes, 6, 3, 84, 84)
        assert data.class_names == [f"n{split[:2]}{c:06d}" for c in range(classes)]
        for c in range(classes):
            for i in range(6):  # the first 6 images of the class, in the release's order
                image = data.images[c, i]
                assert image[:, 40, 40].tolist() == [10 * c + 1, i, 100 + s]
                assert image[:, 0, 0].tolist() == [255, 0, 0]  # RGB, not the reference loader's BGR


def test_classes_of_different_sizes_keep_the_smallest_count_and_say_so(tmp_path):
    root = write_release(tmp_path / "tiered", sizes={"train": [6, 9, 7, 6]})
    with pytest.warns(UserWarning, match=r"classes hold 6\.\.9 images; keeping the first 6 of each \(4 of 28"):
        data = load_tieredimagenet(root, "train", cache_dir=tmp_path / "cache")
    assert data.images.shape[:2] == (4, 6)


def test_a_second_load_is_served_from_the_cache(tmp_path, monkeypatch):
    root = write_release(tmp_path / "tiered")
    first = _load(root, "test", tmp_path)
    cached = list((tmp_path / "cache").glob("tieredimagenet-v1-pkl-*.pt"))
    assert len(cached) == 1 and not list((tmp_path / "cache").glob(".decode-*"))  # no scratch file is left
    import reptile_edu.data.tieredimagenet as tiered
    monkeypatch.setattr(tiered, "_decode_release", None)  # a second decode would fail
    second = _load(root, "test", tmp_path)
    assert torch.equal(first.images, second.images)


def test_folders_load_like_the_release(tmp_path):
    root = tmp_path / "folders"
    for s, (split, classes) in enumerate(SPLIT_CLASSES.items()):
        for c in range(classes):
            (root / split / f"n{c:08d}").mkdir(parents=True)
            for i in range(6):
                Image.fromarray(_image(s, c, i)).save(root / split / f"n{c:08d}" / f"{i:04d}.png")
    data = _load(root, "val", tmp_path)
    assert data.images.shape == (2, 6, 3, 84, 84) and data.class_names == ["n00000000", "n00000001"]
    assert data.images[1, 3, :, 40, 40].tolist() == [11, 3, 101]


MEMORY_CHILD = """
import json, sys, warnings
from pathlib import Path
import torch
from tests.test_data_tieredimagenet import write_release
from reptile_edu.data.tieredimagenet import load_tieredimagenet

def anonymous():  # the process's memory that no file backs
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("RssAnon:"))

tmp = Path(sys.argv[1])
root = write_release(tmp / "tiered", sizes={"train": [300] * 4})
warnings.simplefilter("ignore")
before = anonymous()
data = load_tieredimagenet(root, "train", cache_dir=tmp / "cache")
decode = anonymous() - before
before = anonymous()
copy = torch.zeros(data.images.shape, dtype=torch.uint8).copy_(data.images)  # the set in ordinary memory
print(json.dumps({"decode": decode, "copy": anonymous() - before, "shape": list(data.images.shape)}))
"""


def test_the_decoded_set_is_not_held_in_the_process_memory(tmp_path):
    """The pixels go to a file-backed tensor: in a fresh process, its own memory grows by far less than the
    decoded set, where copying the set into ordinary memory (the control) grows it by the whole set."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    if not Path("/proc/self/status").is_file():
        pytest.skip("needs Linux's /proc/self/status to read the process's own memory")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(tmp_path)], cwd=root, capture_output=True,
                         text=True, check=True)
    grew = json.loads(out.stdout.strip().splitlines()[-1])
    decoded_bytes = 4 * 300 * 3 * 84 * 84  # 25 MB
    assert grew["shape"] == [4, 300, 3, 84, 84]
    assert grew["copy"] > decoded_bytes / 2, grew  # the measure sees a set held in memory
    assert grew["decode"] < decoded_bytes / 4, grew


@pytest.mark.parametrize("damage, message", [
    ("html", "is an HTML page, not a pickle"),
    ("truncated", "cannot be unpickled"),
    ("code", "refusing to load"),
    ("labels", "labels 18 images but its images file holds 19"),
    ("missing labels", "lacks test_labels.pkl"),
    ("size", "is 64x64, expected 84x84"),
    ("split", "split 'test' not found"),
])
def test_a_damaged_release_is_named_in_one_line(tmp_path, damage, message):
    root = write_release(tmp_path / "tiered", labels_count_off=1 if damage == "labels" else 0)
    images = root / "test_images_png.pkl"
    if damage == "html":
        images.write_bytes(b"<!DOCTYPE html><html><body>Google Drive quota exceeded</body></html>")
    elif damage == "truncated":
        images.write_bytes(images.read_bytes()[:1000])
    elif damage == "code":
        images.write_bytes(pickle.dumps(eval, protocol=2))  # a pickle that names a builtin function
    elif damage == "missing labels":
        (root / "test_labels.pkl").unlink()
    elif damage == "size":
        encoded = [_png(np.zeros((64, 64, 3), dtype=np.uint8))] * 21
        images.write_bytes(pickle.dumps(encoded, protocol=2))
        with open(root / "test_labels.pkl", "wb") as f:
            pickle.dump({"label_specific": np.repeat(np.arange(3), 7)}, f)
    elif damage == "split":
        images.unlink()
        (root / "test_labels.pkl").unlink()
    with pytest.raises((ValueError, FileNotFoundError), match=message) as info:
        _load(root, "test", tmp_path)
    assert "\n" not in str(info.value)


def test_the_standard_benchmark_needs_the_standard_class_count(tmp_path):
    root = write_release(tmp_path / "tiered")
    with pytest.raises(ValueError, match="has 3 classes; the standard split has 160"):
        load_tieredimagenet(root, "test", standard=True, cache_dir=tmp_path / "cache")
    with pytest.warns(UserWarning, match="has 3 classes; the standard split has 160"):
        load_tieredimagenet(root, "test", cache_dir=tmp_path / "cache")


def test_the_presets_train_on_the_release(tmp_path, monkeypatch):
    from reptile_edu.config import CACHE_ENV
    from reptile_edu.presets import preset
    from reptile_edu.train import load_dataset, meta_train

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    write_release(tmp_path / "data" / "tieredimagenet")
    config = preset("tieredimagenet-10way", "smoke", num_classes=3, train_shots=3, inner_batch_size=3, inner_iters=2,
                    meta_batch_size=2, meta_iters=2, eval_interval=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = load_dataset(config, "train", tmp_path / "data")
    assert train.name == "tieredimagenet/train" and train.images.shape[2:] == (3, 84, 84)
    history = meta_train(config, dataset=train)
    assert len(history.losses) == 2 and all(np.isfinite(history.losses))
