"""What training several seeds together costs against training them one after another (``train --seeds``).

    python benchmarks/seeds.py [--data-root DIR]       # sine 1,000 and Omniglot 5-way 100 meta-iterations
    REPTILE_EDU_SMOKE=1 python benchmarks/seeds.py     # a few iterations, for checking the script

For each setting, S = 3 seeds are trained (``meta_train`` with ``seeds=(0, 1, 2)``: the runs stacked on the task
dimension, every iteration one batched step of 3 x meta-batch tasks) and the same three seeds are trained alone,
one run after another, on the same schedule; the results are the same runs (``tests/test_seeds.py``). Settings:
the sine chapter's Reptile (10 tasks per meta-batch, SGD inner loop), and the official Omniglot 5-way preset
(5 tasks, 5 inner Adam steps on the CPU's static step) on its train split from ``--data-root`` if given, else
random pixels of its shape. Both ways are timed in alternating rounds, one thread, and the best round of each is
kept, so a shared machine's load drifts over both alike. Last line: one flat JSON object (docs/cli.md §4).
"""
import argparse
import json
import time

import torch

from reptile_edu import budget, presets, results, train
from reptile_edu.tasks import ImageDataset

SEEDS = (0, 1, 2)
ROUNDS = budget(3, 1)


def omniglot_data(config, data_root):
    if data_root:
        return train.load_dataset(config, "train", data_root), "real"
    gen = torch.Generator().manual_seed(0)
    classes = budget(4800, 40)
    images = torch.randint(0, 256, (classes, 20, 1, 28, 28), dtype=torch.uint8, generator=gen)
    return ImageDataset(images, [f"c{i}" for i in range(classes)], "random/train"), "random"


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(config, dataset=None) -> tuple[float, float]:
    """Best-of-rounds seconds for the seeds together and for the seeds alone, one after another."""
    together, alone = [], []
    for _ in range(ROUNDS):
        together.append(seconds(lambda: train.meta_train(config.replace(seeds=SEEDS), dataset=dataset)))
        alone.append(seconds(lambda: [train.meta_train(config.alone(s), dataset=dataset) for s in SEEDS]))
    return min(together), min(alone)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="holds omniglot/ (else random pixels of Omniglot's shape)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sine = presets.sine_config("reptile", "fast").replace(meta_iters=budget(1_000, 20), eval_interval=10**9)
    omniglot = presets.preset("omniglot-5way", "paper", meta_iters=budget(100, 4), eval_interval=10**9)
    data, kind = omniglot_data(omniglot, args.data_root)
    out = {"device": results.device_name("cpu"), "seeds": len(SEEDS), "rounds": ROUNDS, "omniglot_data": kind}
    for name, config, dataset in (("sine", sine, None), ("omniglot", omniglot, data)):
        together, alone = compare(config, dataset)
        out |= {f"{name}_meta_iters": config.meta_iters, f"{name}_meta_batch": config.meta_batch_size,
                f"{name}_together_s": round(together, 3), f"{name}_alone_s": round(alone, 3),
                f"{name}_speedup": round(alone / together, 3)}
        print(f"{name}: {len(SEEDS)} seeds x {config.meta_iters} meta-iterations: together {together:.2f} s, "
              f"alone one after another {alone:.2f} s ({alone / together:.2f}x)", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
