"""Sine toy: the demo script's schedule, naive loop vs the package, and the batched variant's time to match.

    python benchmarks/sine.py            # full demo schedule (30,000 iterations, about 4 minutes here)
    REPTILE_EDU_SMOKE=1 python benchmarks/sine.py   # seconds, for checking the script

1. ``naive``: the demo script as community ports write it (deep copy of the weights per task, autograd per
   step, manual ``p.data -=`` updates, ``load_state_dict`` interpolation).
2. ``ours``: the package's serial Reptile (``sine_config('reptile', 'demo')``), the same maths.
3. ``vectorised``: batched Reptile (Algorithm 2, meta-batch 10, outer step 1 -> 0) over a ladder of lengths;
   reports the training time of the shortest that reaches the demo runs' error (within 5%).
Error = MSE on the 50-point grid after 32 SGD steps (lr 0.02) on 10 points, mean over 100 fixed held-out
tasks, measured by the same function for all three. One thread each: the work is tiny and overhead-bound.
Last line: one flat JSON object (keys in docs/cli.md §4).
"""
import copy
import json
import time

import numpy as np
import torch
from torch import nn

from reptile_edu import budget, meta_train
from reptile_edu.presets import sine_config
from reptile_edu.evaluation import sine_eval_set, sine_mse_after
from reptile_edu.models import SineMLP

MATCH_TOLERANCE = 1.05
LADDER = (500, 1_000, 1_500, 2_000, 3_000, 4_000, 6_000)


def naive_demo(iterations: int, seed: int = 0) -> nn.Module:
    """joschu's reptile-sinewaves-demo.py training loop (plotting removed), as ported everywhere."""
    rng = np.random.RandomState(seed)
    torch.manual_seed(seed)
    x_all = np.linspace(-5, 5, 50)[:, None]
    model = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    for iteration in range(iterations):
        weights_before = copy.deepcopy(model.state_dict())
        phase, ampl = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 5)
        y_all = np.sin(x_all + phase) * ampl
        inds = rng.permutation(50)
        for start in range(0, 50, 10):
            mb = inds[start:start + 10]
            x, y = torch.tensor(x_all[mb], dtype=torch.float32), torch.tensor(y_all[mb], dtype=torch.float32)
            model.zero_grad()
            loss = (model(x) - y).pow(2).mean()
            loss.backward()
            for param in model.parameters():
                param.data -= 0.02 * param.grad.data
        weights_after = model.state_dict()
        outerstepsize = 0.1 * (1 - iteration / iterations)
        model.load_state_dict({name: weights_before[name] + (weights_after[name] - weights_before[name]) * outerstepsize
                               for name in weights_before})
    return model


def as_params(model: nn.Sequential) -> dict:
    """nn.Linear weights [out, in] -> the package's layout (w [in, out], b [1, out])."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return {key: t for i, lin in enumerate(linears)
            for key, t in ((f"w{i}", lin.weight.detach().T.contiguous()), (f"b{i}", lin.bias.detach()[None]))}


def main():
    torch.set_num_threads(1)
    model, eval_set = SineMLP(), sine_eval_set(100)
    demo = sine_config("reptile", "demo", meta_iters=budget(30_000, 200), eval_interval=10**9)

    start = time.perf_counter()
    naive = naive_demo(demo.meta_iters)
    naive_s = time.perf_counter() - start
    mse_naive = sine_mse_after(model, as_params(naive), eval_set).mean().item()

    ours = meta_train(demo)
    mse_ours = sine_mse_after(model, ours.params, eval_set).mean().item()

    target = MATCH_TOLERANCE * (mse_naive + mse_ours) / 2
    vectorised_s = vectorised_mse = None
    for iters in budget(LADDER, (20, 200)):
        run = meta_train(sine_config("reptile", "fast", meta_iters=iters, eval_interval=10**9))
        vectorised_mse = sine_mse_after(model, run.params, eval_set).mean().item()
        print(f"batched, meta-batch 10, {iters} iterations: {run.wall_s:.2f} s, MSE {vectorised_mse:.4f} "
              f"(target {target:.4f})", flush=True)
        vectorised_s = run.wall_s
        if vectorised_mse <= target:
            break
    else:
        vectorised_s = None  # never matched: say so rather than report the longest run

    print(json.dumps({"naive_s": round(naive_s, 2), "ours_s": round(ours.wall_s, 2),
                      "speedup": round(naive_s / ours.wall_s, 2),
                      "mse_after_32_naive": round(mse_naive, 4), "mse_after_32_ours": round(mse_ours, 4),
                      "vectorised_s_to_match": None if vectorised_s is None else round(vectorised_s, 2),
                      "vectorised_mse": round(vectorised_mse, 4), "meta_iters": demo.meta_iters}))


if __name__ == "__main__":
    main()
