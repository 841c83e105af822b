"""Omniglot loader: generated fixtures in every layout, the real set where the data root has it, and clear errors."""
import io
import random
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from reptile_edu.data import omniglot
from reptile_edu.data.omniglot import load_omniglot

pytestmark = pytest.mark.filterwarnings("ignore:.*Omniglot characters, not 1,623")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPTILE_EDU_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def official_pixels(png: bytes, rotation: int) -> np.ndarray:
    """The official ``_read_image``: resize to 28x28 then rotate, float32 of the mode "1" image."""
    return np.array(Image.open(io.BytesIO(png)).resize((28, 28)).rotate(rotation)).astype("float32")


@pytest.mark.parametrize("layout", ["zips", "folders", "torchvision"])
def test_every_layout_gives_the_same_official_split(tmp_path, cache, layout, omniglot_members, omniglot_root):
    root = omniglot_root(tmp_path, layout)
    train = load_omniglot(root, "train")
    test = load_omniglot(root, "test")
    # 7 characters < 1,200: the "first 1,200" are all of them, in seed-0 shuffled order
    order = sorted({(k.split("/")[1], k.split("/")[2]) for k in omniglot_members()})
    random.seed(0)
    random.shuffle(order)
    assert train.class_names == [f"{a}/{c}@{r}" for a, c in order for r in (0, 90, 180, 270)]
    assert test.num_classes == 0 and train.images.shape == (28, 20, 1, 28, 28)
    assert train.rotations == (0, 90, 180, 270) and test.rotations == (0,)
    assert train.images.dtype == torch.uint8 and set(train.images.unique().tolist()) == {0, 255}


def test_pixels_match_the_official_read_image_for_every_rotation(tmp_path, cache, omniglot_members, omniglot_root):
    root = omniglot_root(tmp_path, "zips")
    members = omniglot_members()
    train = load_omniglot(root, "train")
    name = train.class_names[0].split("@")[0]
    pngs = [v for k, v in sorted(members.items()) if f"/{name}/" in k]
    for r, rot in enumerate((0, 90, 180, 270)):
        ours = train.images[r, :, 0].float() / 255
        official = torch.from_numpy(np.stack([official_pixels(p, rot) for p in pngs]))
        assert torch.equal(ours, official), rot


def test_background_evaluation_split_is_named_and_separate(tmp_path, cache, omniglot_root):
    root = omniglot_root(tmp_path, "folders")
    train = load_omniglot(root, "train", benchmark="background-evaluation")
    test = load_omniglot(root, "test", benchmark="background-evaluation")
    assert train.name == "omniglot-bgeval/train" and train.num_classes == 5 * 4
    assert test.class_names == ["Gamma/character01", "Gamma/character02"]


def test_second_load_comes_from_the_cache(tmp_path, cache, monkeypatch, omniglot_root):
    root = omniglot_root(tmp_path, "zips")
    first = load_omniglot(root, "train")
    assert len(list(cache.glob("omniglot-*.pt"))) == 1
    monkeypatch.setattr(omniglot, "decode", lambda root: pytest.fail("decoded again"))
    assert torch.equal(load_omniglot(root, "train").images, first.images)


def test_cache_is_keyed_by_content(tmp_path, cache, omniglot_members, omniglot_root, write_zip):
    root = omniglot_root(tmp_path, "zips")
    load_omniglot(root, "train")
    members = {k: v for k, v in omniglot_members().items() if "Alpha/character03" not in k}
    write_zip(root / "images_background.zip", {k: v for k, v in members.items() if "background" in k})
    assert load_omniglot(root, "train").num_classes == 6 * 4
    assert len(list(cache.glob("omniglot-*.pt"))) == 2


def test_missing_root_says_where_to_put_the_zips(tmp_path, cache, write_zip):
    with pytest.raises(FileNotFoundError, match="images_background.zip and images_evaluation.zip"):
        load_omniglot(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    write_zip(tmp_path / "half" / "images_background.zip", {"x/y": b""})
    with pytest.raises(FileNotFoundError, match="images_evaluation"):
        load_omniglot(tmp_path / "half")


def test_truncated_zip_is_reported(tmp_path, cache, omniglot_root):
    root = omniglot_root(tmp_path, "zips")
    data = (root / "images_background.zip").read_bytes()
    (root / "images_background.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_omniglot(root)


def test_wrong_image_size_is_reported(tmp_path, cache, omniglot_members, write_zip):
    members = omniglot_members()
    key = next(iter(members))
    buf = io.BytesIO()
    Image.new("1", (28, 28), 1).save(buf, format="PNG")
    members[key] = buf.getvalue()
    root = tmp_path / "bad"
    for s in ("images_background", "images_evaluation"):
        write_zip(root / f"{s}.zip", {k: v for k, v in members.items() if k.startswith(s)})
    with pytest.raises(ValueError, match="105x105"):
        load_omniglot(root)


def test_bad_arguments(tmp_path, cache, omniglot_root):
    root = omniglot_root(tmp_path, "zips")
    with pytest.raises(ValueError, match="split"):
        load_omniglot(root, "val")
    with pytest.raises(ValueError, match="benchmark"):
        load_omniglot(root, benchmark="lake")


def test_unwritable_cache_warns_and_still_loads(tmp_path, monkeypatch, omniglot_root):
    root = omniglot_root(tmp_path, "zips")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="not writable.*REPTILE_EDU_CACHE"):
        data = load_omniglot(root, "train", cache_dir=blocker / "cache")
    assert data.num_classes == 28


def test_real_omniglot_counts_split_and_values(tmp_path_factory, real_data):
    real = real_data("omniglot")
    cache_dir = tmp_path_factory.getbasetemp() / "omniglot-real-cache"  # shared by the real-data tests
    train = load_omniglot(real, "train", cache_dir=cache_dir)
    test = load_omniglot(real, "test", cache_dir=cache_dir)
    data = torch.load(next(cache_dir.glob("omniglot-*.pt")), weights_only=True)
    assert data["images"].shape == (1623, 20, 1, 28, 28) and data["images"].shape[:2].numel() == 32_460
    assert data["names"] == sorted(data["names"])
    assert train.num_classes == 4800 and test.num_classes == 423 and test.rotations == (0,)
    order = list(range(1623))
    random.seed(0)
    random.shuffle(order)
    names = data["names"]
    assert [n.split("@")[0] for n in train.class_names[::4]] == [names[i] for i in order[:1200]]
    assert test.class_names == [names[i] for i in order[1200:]]
    assert set(train.class_names[::4]).isdisjoint(test.class_names + train.class_names[1::4])
    x = train.images[:8].float() / 255
    assert x.min() == 0 and x.max() == 1 and 0.5 < x.mean() < 1  # mostly white background (1.0), ink 0.0
    with zipfile.ZipFile(real / "images_background.zip") as z:
        png = z.read("images_background/Alphabet_of_the_Magi/character01/0709_01.png")
    c = names.index("Alphabet_of_the_Magi/character01")
    assert torch.equal(data["images"][c, 0, 0].float() / 255, torch.from_numpy(official_pixels(png, 0)))
