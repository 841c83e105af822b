"""Decode a dataset once into a uint8 tensor file; later loads memory-map it.

A cache file lives under ``cache_root()`` (``$REPTILE_EDU_CACHE``), never inside the data root (which is
read-only in CI). Its name is ``<source>-<fingerprint>.pt``: the source says what was decoded and how
(e.g. ``omniglot-v1``), the fingerprint says from which bytes (see ``fingerprint``), so a changed archive
or a changed decoding rule can never be served a stale cache. Files are written to a temporary name and
renamed, so an interrupted decode leaves no half-written cache behind.
"""
from __future__ import annotations

import hashlib
import math
import os
import pickle
import struct
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import torch

from ..config import CACHE_ENV, cache_root


def fingerprint(paths) -> str:
    """A short hash of the content of data files and folders, cheap enough to compute on every load.

    Zips: every member's name, size and CRC-32 from the central directory (a true content hash that reads
    only the archive's index). Folders: every file's relative path, size and mtime (reading 60,000 JPEGs just
    to fingerprint them would defeat the cache). Other files: size, mtime and the first MiB.
    """
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        h.update(path.name.encode() + b"\0")
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file():
                    st = f.stat()
                    h.update(f"{f.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        elif zipfile.is_zipfile(path):
            h.update(_central_directory(path))
        else:
            st = path.stat()
            h.update(f"{st.st_size}\0{st.st_mtime_ns}\n".encode())
            with open(path, "rb") as f:
                h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def _central_directory(path: Path) -> bytes:
    """The raw central directory of a zip (names, sizes, CRC-32 of every member): a few ms even for 30,000
    members, where parsing it with ``zipfile`` takes half a second."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 65_557))
        tail = f.read()
        end = tail.rfind(b"PK\x05\x06")
        cd_size, cd_offset = struct.unpack("<II", tail[end + 12:end + 20])
        if end < 0 or 0xFFFFFFFF in (cd_size, cd_offset):  # zip64: fall back to the slow, exact parse
            with zipfile.ZipFile(path) as z:
                return "".join(f"{i.filename}\0{i.file_size}\0{i.CRC}\n" for i in z.infolist()).encode()
        f.seek(cd_offset)
        return f.read(cd_size)


def cached(source: str, key: str, build: Callable[[], dict], cache_dir=None) -> dict:
    """Return ``build()``'s dict of tensors and plain values, decoding only on the first call.

    Later calls memory-map the file (``torch.load(mmap=True)``), so a load costs almost nothing until pages
    are touched and never holds a second copy. An unwritable cache directory is not fatal: we warn, say how
    to fix it, and return the freshly decoded data (a user on a read-only machine can still train).
    """
    directory = cache_root(cache_dir)
    path = directory / f"{source}-{key}.pt"
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # a damaged cache is rebuilt, never trusted
            warnings.warn(f"ignoring unreadable cache {path} ({exc}); decoding again", stacklevel=3)
    data = build()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(data, tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        warnings.warn(f"cache directory {directory} is not writable ({exc.strerror or exc}); the data was decoded "
                      f"but not cached, so the next load decodes again. Set {CACHE_ENV} or pass cache_dir= "
                      f"to a writable folder.", stacklevel=3)
    return data


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open a data archive; a truncated file or a saved HTML error page becomes one clear error."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path} is not a readable zip ({exc}): probably truncated or an HTML error page; "
                         f"delete it and copy or download it again") from exc


class _ArraysOnly(pickle.Unpickler):
    """Unpickle NumPy arrays, dicts, lists and strings only: a pickle from the internet must not run code."""

    def find_class(self, module, name):
        if module.split(".")[0] == "numpy" and name in ("_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"):
            return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode"):  # how Python 3 writes bytes into a protocol-2 pickle
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")


def safe_unpickle(path: Path, what: str):
    """A data pickle (``what`` names it in errors) read with the allow-list above; an HTML page saved under its
    name (a download quota or confirmation page), another file type or a truncated pickle is one clear error."""
    with open(path, "rb") as f:
        head = f.read(512)
        if head.lstrip().startswith(b"<") or b"<html" in head.lower():
            raise ValueError(f"{path} is an HTML page, not a pickle (a download quota or confirmation page saved "
                             f"under the .pkl name); delete it and download the file again, e.g. in a browser")
        if not head.startswith(b"\x80"):
            raise ValueError(f"{path} is not a pickle (it starts with {head[:8]!r}); delete it and download it again")
        f.seek(0)
        try:
            return _ArraysOnly(f, encoding="latin1").load()
        except (EOFError, pickle.UnpicklingError, ValueError) as exc:
            raise ValueError(f"{path} cannot be unpickled ({exc}): truncated or not {what}; "
                             f"download it again") from exc


def scratch_uint8(shape, cache_dir=None) -> torch.Tensor:
    """A zeroed uint8 tensor of ``shape`` backed by a file in the cache directory rather than by the process's own
    memory: a large set decoded into it lives in the page cache, which the system writes back and frees as it
    needs, so decoding never holds the whole set in memory. The file is unlinked at once (the mapping keeps it
    until the tensor is gone). Where the cache directory cannot be written, an ordinary tensor."""
    directory = cache_root(cache_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".decode-", suffix=".scratch")
        os.close(fd)
    except OSError:
        return torch.zeros(shape, dtype=torch.uint8)
    try:
        return torch.from_file(name, shared=True, size=math.prod(shape), dtype=torch.uint8).view(shape)
    finally:
        try:
            os.unlink(name)
        except OSError:  # Windows keeps a mapped file; it stays until the tensor is freed
            pass
