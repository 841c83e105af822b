"""Download Omniglot's original zips, for users with internet (the tests and CI never download; with
``REPTILE_EDU_OFFLINE=1`` the chapters do not try).

Every download goes to a temporary file beside the target and is renamed only after it passes three checks,
so a partial file, an error page or a proxy's HTML is never mistaken for data: it starts like a zip, it has
the expected size, and its md5 is the one torchvision also checks for these files. Mini-ImageNet is never
downloaded: ImageNet's terms allow research and education use only and no stable public source exists
(``data/miniimagenet.py`` says where to get it and which layouts it reads).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..config import data_root

OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/raw/master/python/{name}.zip"
# (bytes, md5) of the original archives (md5s as in torchvision.datasets.Omniglot)
OMNIGLOT_FILES = {
    "images_background": (9_464_212, "68d2efa1b9178cc56df9314c21c6e718"),
    "images_evaluation": (6_462_886, "6b91aef0f799c5bb55b94e3f2daec811"),
}
ZIP_MAGIC = b"PK\x03\x04"


def fetch(url: str, target: Path, size: int | None, md5: str | None, timeout: float = 60,
          progress: bool = False) -> Path:
    """Download ``url`` to ``target`` atomically, refusing anything that is not the expected zip. ``progress``
    shows a byte-counting bar (a widget in notebooks). An interruption (Ctrl-C included) leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    digest, written, head = hashlib.md5(), 0, b""
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=target.name)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(1 << 20):
                    if len(head) < 4:
                        head += chunk[:4]
                    digest.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        except (urllib.error.URLError, TimeoutError) as exc:
            raise OSError(f"could not download {url} ({getattr(exc, 'reason', exc)}); check the connection, or "
                          f"download it by hand into {target.parent}") from None
        if not head.startswith(ZIP_MAGIC):
            kind = "an HTML page" if head[:1] == b"<" else "not a zip file"
            raise ValueError(f"download of {url} gave {kind} ({written} bytes), not the dataset: the link may have "
                             f"moved or a proxy intercepted it; download it by hand into {target.parent}")
        if size is not None and written != size:
            raise ValueError(f"download of {url} is incomplete or different: {written} bytes, expected {size}; "
                             f"retry, or download it by hand into {target.parent}")
        if md5 is not None and digest.hexdigest() != md5:
            raise ValueError(f"download of {url} has md5 {digest.hexdigest()}, expected {md5}; "
                             f"retry, or download it by hand into {target.parent}")
        os.replace(tmp, target)
        return target
    finally:
        if bar is not None:
            bar.close()
        Path(tmp).unlink(missing_ok=True)


def download_omniglot(root=None, url: str = OMNIGLOT_URL, files=None, progress: bool = False) -> Path:
    """Fetch ``images_background.zip`` and ``images_evaluation.zip`` into ``root`` (default
    ``data_root()/omniglot``), skipping those already present. Returns the root."""
    root = Path(root) if root is not None else data_root() / "omniglot"
    for name, (size, md5) in (files or OMNIGLOT_FILES).items():
        target = root / f"{name}.zip"
        if not target.exists():
            fetch(url.format(name=name), target, size, md5, progress=progress)
    return root
