"""Image meta-training and evaluation speed: a community-style loop vs the package's paths, on CPU or GPU.

    python benchmarks/meta_train.py                       # omniglot-5way on the CPU, about 5 minutes on 2 cores
    python benchmarks/meta_train.py --device cuda --preset omniglot-20way --data-root DATA
    REPTILE_EDU_SMOKE=1 python benchmarks/meta_train.py   # seconds, for checking the script

A preset's paper settings (N-way, train-shots, meta-batch, inner batch and steps, Adam beta1 = 0, lr; eval batch
and 50 eval steps). Data: the preset's real train split when ``--data-root`` holds it, else a random dataset of
the split's shape (Omniglot 4,800 classes x 20 of 28x28; Mini-ImageNet 64 x 600 of 84x84x3): the sampling and
the maths are those of real data, without the decoding. Every method draws its tasks as ``train`` does
(``train.sample_batches``; the graph path its indices with ``tasks.training_indices``).
1. ``naive``: the way community ports write it: ``nn.Module`` net, ``copy.deepcopy`` per task, a new
   ``torch.optim.Adam`` per task (so the Adam state is reset, not carried), a Python loop over tasks.
2. ``faithful``: ``meta.meta_step(path="faithful")``, the official serial semantics with the carried state.
3. ``vectorised``: ``meta.meta_step(path="vectorised")``, the meta-batch as one folded network, one
   iteration at a time as ``train.meta_train``'s per-iteration loop (the logged loss read every iteration).
4. ``graphed`` (CUDA only): ``graphs.StaticStep``, the same vectorised step captured once as a CUDA graph and
   replayed, the losses read every ``graphs.SYNC`` iterations, with cuDNN's deterministic algorithms: what
   ``train --deterministic`` runs on a GPU.
5. ``graphed_autotune`` (CUDA only): the same with cuDNN's autotuned algorithms: what ``train`` runs on a GPU.
The other paths run as ``train`` would (autotuned cuDNN).
Evaluation (1-shot, the preset's eval batch, 50 steps, both prediction modes): naive per task (deep copy, new
optimiser, N+1 forwards) vs ``evaluation.evaluate`` as it runs by default (``vectorised_eval``: on a CPU
``evaluation.choose_chunk_size``'s chunk, reported as ``eval_chunk_size``) and with the fixed 100 tasks at once it
used on a CPU before (``chunk100_eval``). Methods are timed in alternating rounds so a shared machine's load drifts
over all of them alike; on the CPU one thread each, and then both evaluations again on every core as torch runs
by default (``*_eval_cores``: the loop with intra-op threads, ours with one chunk per core). Last line: one flat
JSON object (keys of docs/cli.md §4).
"""
import argparse
import copy
import json
import os
import time

import torch
from torch import nn

from reptile_edu import budget, evaluation, meta, presets, results, train
from reptile_edu.fast import graphs
from reptile_edu.models import TF_BN_EPSILON
from reptile_edu.tasks import ImageDataset, eval_episodes, support_batches
from reptile_edu.train import cudnn_mode

PATHS = ("naive", "faithful", "vectorised", "graphed", "graphed_autotune")  # graphed*: CUDA only
SHAPES = {"omniglot": (4800, 20, 1, 28, 28), "miniimagenet": (64, 600, 3, 84, 84)}


def naive_net(model):
    """The preset's network as community ports write it: nn.Module layers, BN on batch statistics."""
    layers, in_ch = [], model.in_channels
    for _ in range(4):
        layers += [nn.Conv2d(in_ch, model.channels, 3, model.stride, 1),
                   nn.BatchNorm2d(model.channels, eps=TF_BN_EPSILON, track_running_stats=False)]
        if model.pool:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        layers.append(nn.ReLU())
        in_ch = model.channels
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(model.features, model.num_classes))


def naive_adapt(net, batches, lr):
    clone = copy.deepcopy(net)
    opt = torch.optim.Adam(clone.parameters(), lr=lr, betas=(0.0, 0.999))
    for x, y in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(clone(x), y, reduction="sum").backward()
        opt.step()
    return clone


def naive_meta_step(net, batches, eps, lr):
    tasks = batches[0][0].shape[0]
    new = [torch.zeros_like(p) for p in net.parameters()]
    for t in range(tasks):
        adapted = naive_adapt(net, [(x[t], y[t]) for x, y in batches], lr)
        for acc, p in zip(new, adapted.parameters()):
            acc += p.detach() / tasks
    with torch.no_grad():
        for p, avg in zip(net.parameters(), new):
            p += eps * (avg - p)


@torch.no_grad()
def naive_predict(net, sx, qx):
    trans = net(qx).argmax(-1)
    non = torch.stack([net(torch.cat([sx, qx[j:j + 1]]))[-1].argmax(-1) for j in range(qx.shape[0])])
    return trans, non


def dataset_for(config, data_root, smoke: bool, device):
    """The preset's train split from ``data_root`` if given, else random pixels of its shape (fewer in smoke),
    made on ``device``."""
    if data_root:
        return train.load_dataset(config, "train", data_root).to(device), "real"
    classes, per_class, *chw = SHAPES[config.dataset]
    if smoke:
        classes, per_class = 40, 20
    gen = torch.Generator(device).manual_seed(0)
    images = torch.randint(0, 256, (classes, per_class, *chw), dtype=torch.uint8, generator=gen, device=device)
    return ImageDataset(images, [f"c{i}" for i in range(classes)], f"{config.dataset}-shaped"), "random"


def graphed(config, model, data):
    """One chunk of ``graphs.SYNC`` iterations of a static step run in ``config``'s cuDNN mode (captured on the first
    call, in the warm-up, which is when cuDNN's choice is fixed)."""
    runner = graphs.StaticStep(train.TrainState.new(config), model, data)

    def job():
        cudnn_mode(config.deterministic)
        try:
            runner.run(graphs.SYNC)
        finally:
            cudnn_mode(False)

    return job


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(preset: str, device: str, data_root=None, paths=PATHS, evaluate: bool = True, rounds: int | None = None,
            eval_tasks: int | None = None) -> dict:
    smoke = budget(False, True)
    dev = torch.device(device)
    if dev.type == "cpu":
        torch.set_num_threads(1)
    config = presets.preset(preset, "paper", device=device)
    data, source = dataset_for(config, data_root, smoke, dev)
    lr, n = config.inner_lr, config.num_classes
    eval_batch = presets.eval_batch_size(preset, 1, config.eval_batch_size)
    rounds = rounds or budget(3 if dev.type == "cpu" else 2, 1)
    iters, naive_tasks = budget(6 if dev.type == "cpu" else 20, 1), budget(20, 2)
    big_eval = eval_tasks or budget(100 if dev.type == "cpu" else 1000, 2)
    gen = torch.Generator().manual_seed(0)
    model = train.build_model(config)
    net = naive_net(model).to(dev)
    phi = {k: v.to(dev) for k, v in model.init_params(gen).items()}
    states = {"faithful": None, "vectorised": None}

    def batches():
        return [(x.to(dev), y.to(dev)) for x, y in train.sample_batches(config, gen, data)]

    def run_path(path):
        d, states[path], losses = meta.meta_step("reptile", model, phi, batches(), "adam", lr, states[path], path)
        for k, p in phi.items():
            p.add_(d[k] * 0.5)
        losses[0].mean().item()  # the per-iteration loop reads the logged loss every iteration

    # name -> (one call, meta-iterations per call, calls per round)
    jobs = {"naive": (lambda: naive_meta_step(net, batches(), 0.5, lr), 1, iters),
            "faithful": (lambda: run_path("faithful"), 1, iters),
            "vectorised": (lambda: run_path("vectorised"), 1, iters)}
    if dev.type == "cuda":  # the graph path is timed over whole chunks (one host sync each), as train runs it
        for name, deterministic in (("graphed", True), ("graphed_autotune", False)):
            jobs[name] = (graphed(config.replace(deterministic=deterministic), model, data), graphs.SYNC,
                          budget(3, 1))
    jobs = {name: job for name, job in jobs.items() if name in paths}
    cudnn_mode(False)  # the eager paths as train runs them

    def naive_eval():
        for _ in range(naive_tasks):
            sx, sy, qx, qy = eval_episodes(data, n, 1, 1, gen)
            steps = support_batches(sx, sy, eval_batch, config.eval_inner_iters, gen)
            naive_predict(naive_adapt(net, [(x[0], y[0]) for x, y in steps], lr), sx[0], qx[0])

    settings = dict(num_classes=n, num_shots=1, num_tasks=big_eval, eval_batch_size=eval_batch,
                    eval_inner_iters=config.eval_inner_iters, inner_lr=lr)
    chunk = evaluation.choose_chunk_size(model, phi, data, num_classes=n, num_shots=1,
                                         eval_batch_size=eval_batch) if evaluate else None

    def ours_eval(chunk_size=None):
        return lambda: evaluation.evaluate(model, phi, states["faithful"], data, chunk_size=chunk_size, **settings)

    for job, _, _ in jobs.values():  # warm-up (cuDNN / oneDNN set-up; the graph is captured here)
        job()
    sync(dev)
    evals = [("naive_eval", naive_eval)] if evaluate and "naive" in paths else []
    if evaluate:
        evals += [("vectorised_eval", ours_eval())]
        evals += [("chunk100_eval", ours_eval(100))]
    cores = os.cpu_count() or 1
    if evaluate and dev.type == "cpu" and cores > 1:  # as users run it: torch's default of every core
        evals += [(f"{name}_cores", on_cores(job, cores)) for name, job in evals if name != "chunk100_eval"]
    for name, job in evals:
        if name != "naive_eval":
            job()  # warm-up (and the chunk measurement, once per thread count)
    seconds = dict.fromkeys(list(jobs) + [name for name, _ in evals], 0.0)
    for _ in range(rounds):
        for name, (job, _, calls) in jobs.items():
            start = time.perf_counter()
            for _ in range(calls):
                job()
            sync(dev)
            seconds[name] += time.perf_counter() - start
        for name, job in evals:
            start = time.perf_counter()
            job()
            sync(dev)
            seconds[name] += time.perf_counter() - start
    it_s = {name: rounds * calls * per / seconds[name] for name, (_, per, calls) in jobs.items()}
    eval_s = {name: rounds * (naive_tasks if name.startswith("naive") else big_eval) / seconds[name]
              for name, _ in evals}
    out = {"device": results.device_name(dev) + (" (1 thread)" if dev.type == "cpu" else ""), "preset": preset,
           "data": source}
    out.update({f"{name}_it_s": round(rate, 3) for name, rate in it_s.items()})
    if "naive" in it_s:
        out.update({f"{name}_speedup": round(rate / it_s["naive"], 3) for name, rate in it_s.items() if name != "naive"})
    out.update({f"{name}_tasks_s": round(rate, 3) for name, rate in eval_s.items()})
    if "naive_eval" in eval_s:
        out["eval_speedup"] = round(eval_s["vectorised_eval"] / eval_s["naive_eval"], 3)
    if "naive_eval_cores" in eval_s:
        out.update(cores=cores, eval_cores_speedup=round(eval_s["vectorised_eval_cores"] / eval_s["naive_eval_cores"], 3))
    if evaluate:
        out["eval_chunk_size"] = chunk
    return out


def on_cores(job, cores: int):
    """``job`` run with torch's intra-op threads on ``cores`` cores (the rest of the benchmark uses one)."""
    def run():
        torch.set_num_threads(cores)
        try:
            job()
        finally:
            torch.set_num_threads(1)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="omniglot-5way", choices=["omniglot-5way", "omniglot-20way",
                                                                       "miniimagenet-5way"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--data-root", help="real data (holds omniglot/ or miniimagenet/); default: random pixels")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS, help="what to time (default all)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3 on CPU, 2 on CUDA)")
    parser.add_argument("--eval-tasks", type=int, help="tasks per evaluation of ours (default 100 on CPU, 1000 on CUDA)")
    args = parser.parse_args()
    print(json.dumps(measure(args.preset, args.device, args.data_root, args.paths, rounds=args.rounds,
                             eval_tasks=args.eval_tasks)))


if __name__ == "__main__":
    main()
