"""The downloader on local file:// URLs: good archives land atomically, bad ones never do."""
import hashlib

import pytest

from reptile_edu.data import download
from reptile_edu.data.omniglot import load_omniglot


def _serve(tmp_path, payloads):
    src = tmp_path / "server"
    src.mkdir()
    files = {}
    for name, data in payloads.items():
        (src / f"{name}.zip").write_bytes(data)
        files[name] = (len(data), hashlib.md5(data).hexdigest())
    return src.as_uri() + "/{name}.zip", files


@pytest.fixture
def zips(tmp_path, omniglot_members, write_zip):
    """{name: bytes} of the two archives of the generated Omniglot."""
    members = omniglot_members()
    out = {}
    for set_name in ("images_background", "images_evaluation"):
        part = {k: v for k, v in members.items() if k.startswith(set_name)}
        out[set_name] = write_zip(tmp_path / "build" / f"{set_name}.zip", part).read_bytes()
    return out


def test_download_then_load(tmp_path, zips):
    url, files = _serve(tmp_path, zips)
    root = download.download_omniglot(tmp_path / "data", url=url, files=files)
    assert sorted(p.name for p in root.iterdir()) == ["images_background.zip", "images_evaluation.zip"]
    with pytest.warns(UserWarning, match="holds 7 Omniglot characters, not 1,623: this is a subset"):
        data = load_omniglot(root, "train", cache_dir=tmp_path / "cache")
    assert data.num_classes == 4 * 7  # every fixture character is train (< 1,200), rotated


@pytest.mark.parametrize("payload, size_ok, md5_ok, message", [
    (b"<!DOCTYPE html><html>quota exceeded</html>", True, True, "HTML page"),
    (None, False, True, "incomplete"),
    (None, True, False, "md5"),
])
def test_bad_downloads_are_refused_and_leave_nothing(tmp_path, zips, payload, size_ok, md5_ok, message):
    good = zips["images_background"]
    data = payload if payload is not None else (good if size_ok else good[: len(good) // 2])
    url, files = _serve(tmp_path, {"images_background": data})
    size, md5 = files["images_background"]
    files = {"images_background": (size if size_ok else len(good), md5 if md5_ok else "0" * 32)}
    with pytest.raises(ValueError, match=message):
        download.download_omniglot(tmp_path / "data", url=url, files=files)
    assert not list((tmp_path / "data").iterdir()), "a partial or bad file was left behind"
