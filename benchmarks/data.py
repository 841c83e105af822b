"""Data pipeline timings: decode, cached load, episode throughput, Mini-ImageNet peak memory.

One *episode* = one task's whole inner-loop data: its mini-dataset and all ``inner_iters`` minibatches, as
floats ready for the model. Throughput is measured with meta-batches of 5 tasks (``training_batches`` with
``meta_batch_size=5``), so episodes/s = 5 x meta-batches/s. Omniglot: 5-way, train-shots 10, inner-batch 10,
5 inner iterations (the omniglot-5way preset). Mini-ImageNet: 5-way, train-shots 15, inner-batch 10, 8 iterations.

Mini-ImageNet runs in a child process so its peak RSS (``ru_maxrss``) is not inflated by Omniglot; the decode is
of the train split into a fresh cache. Usage: ``python benchmarks/data.py [--data DATA]`` (DATA holds ``omniglot/``
and ``miniimagenet/full/``); the last line is one flat JSON object (docs/cli.md §4). Keys are null where
the data is absent.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from reptile_edu.data.miniimagenet import load_miniimagenet
from reptile_edu.data.omniglot import load_omniglot
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    mini_root = args.data / "miniimagenet" / "full"
    if args.child:
        print(json.dumps(miniimagenet_child(mini_root)))
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
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()}))


if __name__ == "__main__":
    main()
