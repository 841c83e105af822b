"""Data pipeline timings: decode, cached load, episode throughput, Mini-ImageNet peak memory, tieredImageNet's
decode in bounded memory.

One *episode* = one task's whole inner-loop data: its mini-dataset and all ``inner_iters`` minibatches, as
floats ready for the model. Throughput is measured with meta-batches of 5 tasks (``training_batches`` with
``meta_batch_size=5``), so episodes/s = 5 x meta-batches/s. Omniglot: 5-way, train-shots 10, inner-batch 10,
5 inner iterations (the omniglot-5way preset). Mini-ImageNet: 5-way, train-shots 15, inner-batch 10, 8 iterations.

Mini-ImageNet runs in a child process so its peak RSS (``ru_maxrss``) is not inflated by Omniglot; the decode is
of the train split into a fresh cache. Usage: ``python benchmarks/data.py [--data DATA]`` (DATA holds ``omniglot/``
and ``miniimagenet/full/``); the last line is one flat JSON object (docs/cli.md §4). Keys are null where
the data is absent.

tieredImageNet is not here, so its figures come from a release written in its exact format (a pickled list of
PNG bytes and a labels pickle) from the real Mini-ImageNet fixture's photographs (100 classes x 20), decoded in a
child process while a thread samples the process's own memory (RssAnon) every 10 ms; they are extrapolated to the
full train split (about 450,000 images) per image.
"""
from __future__ import annotations

import argparse
import json
import resource
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import torch

from reptile_edu.data.miniimagenet import load_miniimagenet
from reptile_edu.data.omniglot import load_omniglot
from reptile_edu.data.tieredimagenet import load_tieredimagenet
from reptile_edu.tasks import training_batches

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def episodes_per_s(dataset, train_shots, inner_batch_size, inner_iters, seconds=3.0, meta_batch=5):
    gen = torch.Generator().manual_seed(0)
    training_batches(dataset, 5, train_shots, inner_batch_size, inner_iters, meta_batch, gen)  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        training_batches(dataset, 5, train_shots, inner_batch_size, inner_iters, meta_batch, gen)
        count += meta_batch
    return count / (time.perf_counter() - start)


def omniglot(root: Path) -> dict:
    if not (root / "images_background.zip").is_file():
        return dict.fromkeys(("omniglot_decode_s", "omniglot_cached_load_s", "omniglot_episodes_per_s"))
    with tempfile.TemporaryDirectory() as cache:
        _, decode_s = timed(lambda: load_omniglot(root, "train", cache_dir=cache))
        loads = [timed(lambda: load_omniglot(root, "train", cache_dir=cache))[1] for _ in range(3)]
        train = load_omniglot(root, "train", cache_dir=cache)
        return {"omniglot_decode_s": decode_s, "omniglot_cached_load_s": min(loads),
                "omniglot_episodes_per_s": episodes_per_s(train, 10, 10, 5)}


def miniimagenet_child(root: Path) -> dict:
    """Runs in its own process: decode train into a fresh cache, reload, sample; report peak RSS."""
    torch.set_num_threads(1)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as cache:
        train, decode_s = timed(lambda: load_miniimagenet(root, "train", standard=True, cache_dir=cache))
        del train
        loads = [timed(lambda: load_miniimagenet(root, "train", standard=True, cache_dir=cache))[1] for _ in range(2)]
        train = load_miniimagenet(root, "train", standard=True, cache_dir=cache)
        rate = episodes_per_s(train, 15, 10, 8)
        uint8_mb = train.images.numel() / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"miniimagenet: uint8 train split {uint8_mb:.0f} MiB, process RSS before loading {baseline:.0f} MiB, "
          f"peak {peak:.0f} MiB (peak - baseline = {peak - baseline:.0f} MiB)", file=sys.stderr)
    return {"miniimagenet_decode_s": decode_s, "miniimagenet_cached_load_s": min(loads),
            "miniimagenet_episodes_per_s": rate, "miniimagenet_peak_rss_mb": peak}


TIERED_TRAIN_IMAGES = 448_695  # the release's train split


def _anonymous_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_tiered_release(fixture: Path, root: Path) -> int:
    """The Mini-ImageNet fixture's JPEGs as a tieredImageNet train release (PNG bytes, labels); returns images."""
    import io

    import numpy as np
    from PIL import Image

    encoded, labels = [], []
    with zipfile.ZipFile(fixture) as z:
        names = sorted(n for n in z.namelist() if n.lower().endswith(".jpg"))
        classes = sorted({n.split("/")[-2] for n in names})
        for name in names:
            buffer = io.BytesIO()
            Image.open(io.BytesIO(z.read(name))).convert("RGB").save(buffer, format="PNG")
            encoded.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
            labels.append(classes.index(name.split("/")[-2]))
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "train_images_png.pkl", "wb") as f:
        pickle.dump(encoded, f, protocol=2)
    with open(root / "train_labels.pkl", "wb") as f:
        pickle.dump({"label_specific": np.array(labels), "label_specific_str": classes}, f, protocol=2)
    return len(encoded)


def tieredimagenet_child(fixture: Path) -> dict:
    """Runs in its own process: decode the written release into a fresh cache while sampling memory, reload."""
    import warnings

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # not the standard 351 classes, as expected
    with tempfile.TemporaryDirectory() as work:
        count = write_tiered_release(fixture, Path(work) / "tiered")
        pickle_mb = (Path(work) / "tiered" / "train_images_png.pkl").stat().st_size / 2**20
        baseline, peak, done = _anonymous_mb(), [0.0], threading.Event()

        def sample():
            while not done.wait(0.01):
                peak[0] = max(peak[0], _anonymous_mb())

        watcher = threading.Thread(target=sample)
        watcher.start()
        train, decode_s = timed(lambda: load_tieredimagenet(Path(work) / "tiered", "train", cache_dir=work))
        done.set()
        watcher.join()
        uint8_mb = train.images.numel() / 2**20
        del train
        loads = [timed(lambda: load_tieredimagenet(Path(work) / "tiered", "train", cache_dir=work))[1]
                 for _ in range(2)]
    grew = peak[0] - baseline
    scale = TIERED_TRAIN_IMAGES / count
    print(f"tieredimagenet (written from {count} photographs): PNG pickle {pickle_mb:.1f} MiB, decoded uint8 "
          f"{uint8_mb:.1f} MiB, process memory grew at most {grew:.1f} MiB while decoding; extrapolated to "
          f"{TIERED_TRAIN_IMAGES:,} train images: pickle {pickle_mb * scale / 1024:.1f} GiB, uint8 "
          f"{uint8_mb * scale / 1024:.1f} GiB, decode {decode_s * scale / 60:.0f} min on one core", file=sys.stderr)
    return {"tieredimagenet_images": count, "tieredimagenet_decode_s": decode_s,
            "tieredimagenet_cached_load_s": min(loads), "tieredimagenet_pickle_mb": pickle_mb,
            "tieredimagenet_uint8_mb": uint8_mb, "tieredimagenet_decode_memory_mb": grew,
            "tieredimagenet_full_train_pickle_gb": pickle_mb * scale / 1024,
            "tieredimagenet_full_train_uint8_gb": uint8_mb * scale / 1024,
            "tieredimagenet_full_train_decode_memory_gb": grew * scale / 1024,
            "tieredimagenet_full_train_decode_min": decode_s * scale / 60}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tiered-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    mini_root = args.data / "miniimagenet" / "full"
    fixture = args.data / "miniimagenet" / "mini_imagenet_fixture_20per_class.zip"
    if args.child:
        print(json.dumps(miniimagenet_child(mini_root)))
        return
    if args.tiered_child:
        print(json.dumps(tieredimagenet_child(fixture)))
        return
    result = omniglot(args.data / "omniglot")
    keys = ("miniimagenet_decode_s", "miniimagenet_cached_load_s", "miniimagenet_episodes_per_s",
            "miniimagenet_peak_rss_mb")
    if (mini_root / "train_part1.zip").is_file():
        child = subprocess.run([sys.executable, __file__, "--child", "--data", str(args.data)],
                               stdout=subprocess.PIPE, text=True, check=True)
        result.update(json.loads(child.stdout.strip().splitlines()[-1]))
    else:
        result.update(dict.fromkeys(keys))
    if fixture.is_file():
        child = subprocess.run([sys.executable, __file__, "--tiered-child", "--data", str(args.data)],
                               stdout=subprocess.PIPE, text=True, check=True)
        result.update(json.loads(child.stdout.strip().splitlines()[-1]))
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()}))


if __name__ == "__main__":
    main()
