"""Where the chapters find data (``data.standins``): the data root, the Omniglot download on first use, and
the generated stand-ins, which load through the real loaders."""
import hashlib
import warnings

import pytest

from reptile_edu.config import CACHE_ENV
from reptile_edu.data import standins
from reptile_edu.data.miniimagenet import load_miniimagenet


def test_tiny_miniimagenet_loads_through_the_real_loader(tmp_path):
    root = standins.write_tiny_miniimagenet(tmp_path / "mini", classes=(3, 2, 5), per_class=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_miniimagenet(root, "test", cache_dir=tmp_path / "cache")
    assert ds.images.shape == (5, 4, 3, 84, 84)


def test_find_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("REPTILE_EDU_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert standins.find_data_root("omniglot") is None
    default = tmp_path / "home" / ".cache" / "reptile_edu" / "data" / "omniglot"
    default.mkdir(parents=True)
    assert standins.find_data_root("omniglot") is None  # an empty folder is no data
    (default / "x.zip").write_bytes(b"")
    assert standins.find_data_root("omniglot") == default
    env = tmp_path / "env"
    (env / "omniglot").mkdir(parents=True)
    (env / "omniglot" / "y").write_text("")
    monkeypatch.setenv("REPTILE_EDU_DATA", str(env))
    assert standins.find_data_root("omniglot") == env / "omniglot"


def test_omniglot_or_standin_falls_back_to_a_generated_set(monkeypatch, tmp_path):
    monkeypatch.setattr(standins, "find_data_root", lambda dataset: None)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the stand-in's expected subset warning is silenced, nothing else raised
        root, real, (train, test) = standins.omniglot_or_standin()
    assert not real and root.name == "omniglot" and (root / "images_background.zip").is_file()
    assert train.num_classes == 2 * 8 * 4 and test.num_classes == 8  # background (rotated) / evaluation alphabets


def _missing_omniglot(monkeypatch, tmp_path):
    monkeypatch.setenv("REPTILE_EDU_DATA", str(tmp_path / "data"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv("REPTILE_EDU_OFFLINE", raising=False)


def test_missing_omniglot_is_downloaded_into_the_data_root(monkeypatch, tmp_path, capsys, omniglot_members,
                                                           write_zip):
    from reptile_edu.data import download

    _missing_omniglot(monkeypatch, tmp_path)
    members = omniglot_members(per_class=2)  # 7 characters: the 1,200/423 split keeps them all for training
    files = {}
    for name in ("images_background", "images_evaluation"):
        served = write_zip(tmp_path / "server" / f"{name}.zip",
                           {k: v for k, v in members.items() if k.startswith(name)})
        files[name] = (served.stat().st_size, hashlib.md5(served.read_bytes()).hexdigest())
    real_download = download.download_omniglot
    monkeypatch.setattr(download, "download_omniglot", lambda root, progress: real_download(
        root, url=(tmp_path / "server").as_uri() + "/{name}.zip", files=files, progress=progress))
    with pytest.warns(UserWarning, match="holds 7 Omniglot characters, not 1,623"):
        root, real, (train,) = standins.omniglot_or_standin(("train",))
    assert real and root == tmp_path / "data" / "omniglot" and train.num_classes == 4 * 7
    assert "downloading it there" in capsys.readouterr().out


def test_a_failed_download_or_offline_falls_back_in_one_line(monkeypatch, tmp_path, capsys):
    from reptile_edu.data import download

    _missing_omniglot(monkeypatch, tmp_path)
    real_download = download.download_omniglot
    monkeypatch.setattr(download, "download_omniglot", lambda root, progress: real_download(
        root, url=(tmp_path / "nowhere").as_uri() + "/{name}.zip", progress=progress))
    root, real, _ = standins.omniglot_or_standin()
    out = capsys.readouterr().out
    assert not real and "Download failed (could not download" in out and "stand-in" in out
    assert not (tmp_path / "data" / "omniglot").exists() or not any((tmp_path / "data" / "omniglot").iterdir())
    monkeypatch.setenv("REPTILE_EDU_OFFLINE", "1")
    _, real, _ = standins.omniglot_or_standin()
    assert not real and "REPTILE_EDU_OFFLINE is set" in capsys.readouterr().out
