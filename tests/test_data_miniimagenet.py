"""Mini-ImageNet loader: generated fixtures in every layout, the real set where the data root has it, clear errors."""
import io
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from reptile_edu.data import miniimagenet
from reptile_edu.data.miniimagenet import counts, load_miniimagenet, standard_classes

pytestmark = pytest.mark.filterwarnings("ignore:Mini-ImageNet .* has .* classes x")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPTILE_EDU_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_every_layout_gives_the_same_pixels(tmp_path, cache, mini_classes, mini_members, mini_root):
    members = mini_members()
    roots = {layout: mini_root(tmp_path, layout) for layout in ("folders", "zips", "pkl")}
    loaded = {layout: {s: load_miniimagenet(root, s) for s in mini_classes} for layout, root in roots.items()}
    for split, classes in mini_classes.items():
        first = loaded["folders"][split]
        assert first.class_names == classes and first.images.shape == (len(classes), 6, 3, 84, 84)
        expected = np.array(Image.open(io.BytesIO(members[f"{split}/{classes[0]}/{classes[0]}00000000.jpg"])))
        assert torch.equal(first.images[0, 0], torch.from_numpy(expected).permute(2, 0, 1))
        for layout in ("zips", "pkl"):
            assert torch.equal(loaded[layout][split].images, first.images), (layout, split)
            assert loaded[layout][split].class_names == classes


def test_counts_and_nonstandard_warning(tmp_path, cache, mini_root):
    root = mini_root(tmp_path, "zips")
    assert counts(root) == {"train": (3, 18), "val": (2, 12), "test": (2, 12)}
    with pytest.warns(UserWarning, match="3 classes x 6 images; the standard .* 64 x 600"):
        load_miniimagenet(root, "train")
    with pytest.raises(ValueError, match="standard=True"):
        load_miniimagenet(root, "train", standard=True)


def test_cached_load_does_not_decode(tmp_path, cache, monkeypatch, mini_root):
    root = mini_root(tmp_path, "zips")
    first = load_miniimagenet(root, "val")
    monkeypatch.setattr(miniimagenet, "_decode_split", lambda *a: pytest.fail("decoded again"))
    assert torch.equal(load_miniimagenet(root, "val").images, first.images)


def test_uneven_classes_are_cut_to_the_smallest_with_a_warning(tmp_path, cache, mini_members, write_tree):
    members = mini_members()
    del members["val/n00000004/n0000000400000005.jpg"]
    with pytest.warns(UserWarning, match="keeping the first 5"):
        data = load_miniimagenet(write_tree(tmp_path / "m", members), "val")
    assert data.images.shape[:2] == (2, 5)


def test_missing_root_and_missing_split(tmp_path, cache, mini_members, write_tree):
    with pytest.raises(FileNotFoundError, match="mini-imagenet-cache.*not downloaded automatically"):
        load_miniimagenet(tmp_path / "nowhere")
    root = write_tree(tmp_path / "m", {k: v for k, v in mini_members().items() if k.startswith("train/")})
    with pytest.raises(FileNotFoundError, match="split 'val' not found"):
        load_miniimagenet(root, "val")
    with pytest.raises(ValueError, match="split must be"):
        load_miniimagenet(root, "validation")


def test_html_saved_as_pkl_is_recognised(tmp_path, cache):
    root = tmp_path / "m"
    root.mkdir()
    (root / "mini-imagenet-cache-train.pkl").write_bytes(b"<!DOCTYPE html><html><title>Google Drive - quota")
    with pytest.raises(ValueError, match="HTML page"):
        load_miniimagenet(root, "train")


def test_pickles_cannot_run_code(tmp_path, cache):
    root = tmp_path / "m"
    root.mkdir()
    (root / "mini-imagenet-cache-train.pkl").write_bytes(pickle.dumps({"image_data": print}, protocol=4))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_miniimagenet(root, "train")


def test_truncated_zip_is_reported(tmp_path, cache, mini_root):
    root = mini_root(tmp_path, "zips")
    data = (root / "valtest.zip").read_bytes()
    (root / "valtest.zip").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="truncated"):
        load_miniimagenet(root, "val")


def test_wrong_image_size_is_reported(tmp_path, cache, mini_jpeg, mini_members, write_tree):
    members = mini_members()
    members["test/n00000006/n0000000600000000.jpg"] = mini_jpeg(0, size=(100, 80))
    with pytest.raises(ValueError, match="100x80, expected 84x84"):
        load_miniimagenet(write_tree(tmp_path / "m", members), "test")


def test_classes_must_be_disjoint_across_splits(tmp_path, cache, mini_jpeg, mini_members, write_zip):
    members = mini_members()
    members["val/n00000001/extra.jpg"] = mini_jpeg(99)
    with pytest.raises(ValueError, match="n00000001 appears in both"):
        load_miniimagenet(write_zip(tmp_path / "m" / "all.zip", members).parent, "test")


def test_standard_class_lists_are_the_ravi_split():
    classes = standard_classes()
    assert {s: len(c) for s, c in classes.items()} == {"train": 64, "val": 16, "test": 20}
    assert not set(classes["train"]) & set(classes["val"]) and not set(classes["val"]) & set(classes["test"])


def test_real_counts_and_fixture(tmp_path, real_data):
    real = real_data("miniimagenet")  # the data root's miniimagenet/: full/ and the 20-per-class fixture
    assert counts(real / "full") == {"train": (64, 38_400), "val": (16, 9_600), "test": (20, 12_000)}
    fixture = load_miniimagenet(real, "test", cache_dir=tmp_path)  # the 20-per-class zip beside full/
    assert fixture.class_names == standard_classes()["test"] and fixture.images.shape == (20, 20, 3, 84, 84)
    x = fixture.images.float() / 255
    assert 0.3 < x.mean() < 0.6 and x.min() == 0 and x.max() == 1
