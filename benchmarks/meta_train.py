"""Image meta-training and evaluation speed: a community-style loop vs the package's faithful and vectorised paths.

    python benchmarks/meta_train.py                  # about 5 minutes on an idle 2-core CPU
    REPTILE_EDU_SMOKE=1 python benchmarks/meta_train.py   # seconds, for checking the script

``omniglot-5way`` settings (5-way, train-shots 10, meta-batch 5, 5 inner Adam steps of 10 images, beta1 = 0,
lr 1e-3) on an Omniglot-shaped dataset (4,800 classes x 20 random 28x28 images: the sampling and the maths
are those of real data, without the decoding). All three draw their minibatches from ``tasks.training_batches``.
1. ``naive``: the way community ports write it: ``nn.Module`` net, ``copy.deepcopy`` per task, a new
   ``torch.optim.Adam`` per task (so the Adam state is reset, not carried), a Python loop over tasks.
2. ``faithful``: ``meta.meta_step(path="faithful")``, the official serial semantics with the carried state.
3. ``vectorised``: ``meta.meta_step(path="vectorised")``, the meta-batch as one folded network.
Evaluation (5-way 1-shot, eval batch 5, 50 steps, both prediction modes): naive per task (deep copy, new
optimiser, N+1 forwards) vs ``evaluation.evaluate`` over chunks of tasks. The methods are timed in
alternating rounds so a shared machine's load drifts over all of them alike. One thread each.
Last line: one flat JSON object (keys of interfaces.md section 7).
"""
import copy
import json
import time

import torch
from torch import nn

from reptile_edu import budget, evaluation, meta
from reptile_edu.models import TF_BN_EPSILON, OmniglotCNN
from reptile_edu.tasks import ImageDataset, eval_episodes, support_batches, training_batches

N, TRAIN_SHOTS, META_BATCH, INNER_BATCH, INNER_ITERS, LR = 5, 10, 5, 10, 5, 1e-3
EVAL_BATCH, EVAL_ITERS = 5, 50


def naive_net():
    layers, in_ch = [], 1
    for _ in range(4):
        layers += [nn.Conv2d(in_ch, 64, 3, 2, 1), nn.BatchNorm2d(64, eps=TF_BN_EPSILON, track_running_stats=False),
                   nn.ReLU()]
        in_ch = 64
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(256, N))


def naive_adapt(net, batches):
    clone = copy.deepcopy(net)
    opt = torch.optim.Adam(clone.parameters(), lr=LR, betas=(0.0, 0.999))
    for x, y in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(clone(x), y, reduction="sum").backward()
        opt.step()
    return clone


def naive_meta_step(net, batches, eps):
    new = [torch.zeros_like(p) for p in net.parameters()]
    for t in range(META_BATCH):
        adapted = naive_adapt(net, [(x[t], y[t]) for x, y in batches])
        for acc, p in zip(new, adapted.parameters()):
            acc += p.detach() / META_BATCH
    with torch.no_grad():
        for p, avg in zip(net.parameters(), new):
            p += eps * (avg - p)


@torch.no_grad()
def naive_predict(net, sx, qx):
    trans = net(qx).argmax(-1)
    non = torch.stack([net(torch.cat([sx, qx[j:j + 1]]))[-1].argmax(-1) for j in range(qx.shape[0])])
    return trans, non


def main():
    torch.set_num_threads(1)
    rounds, iters, eval_tasks = budget(3, 1), budget(6, 1), budget(20, 2)
    gen = torch.Generator().manual_seed(0)
    data = ImageDataset(torch.randint(0, 256, (4800, 20, 1, 28, 28), dtype=torch.uint8, generator=gen),
                        [f"c{i}" for i in range(4800)], "omniglot-shaped")
    model, net = OmniglotCNN(N), naive_net()
    phi = model.init_params(gen)
    states = {"faithful": None, "vectorised": None}

    def batches():
        return training_batches(data, N, TRAIN_SHOTS, INNER_BATCH, INNER_ITERS, META_BATCH, gen)

    def run_path(path):
        d, states[path], _ = meta.meta_step("reptile", model, phi, batches(), "adam", LR, states[path], path)
        torch._foreach_add_(list(phi.values()), list(d.values()), alpha=0.5)

    def naive_eval():
        for _ in range(eval_tasks):
            sx, sy, qx, qy = eval_episodes(data, N, 1, 1, gen)
            adapted = naive_adapt(net, [(x[0], y[0]) for x, y in support_batches(sx, sy, EVAL_BATCH, EVAL_ITERS, gen)])
            naive_predict(adapted, sx[0], qx[0])

    def ours_eval():
        evaluation.evaluate(model, phi, states["faithful"], data, N, 1, eval_tasks, EVAL_BATCH, EVAL_ITERS, LR,
                            chunk_size=eval_tasks)

    jobs = {"naive": lambda: naive_meta_step(net, batches(), 0.5), "faithful": lambda: run_path("faithful"),
            "vectorised": lambda: run_path("vectorised")}
    for job in jobs.values():  # warm-up (oneDNN primitive creation)
        job()
    seconds = dict.fromkeys(list(jobs) + ["naive_eval", "vectorised_eval"], 0.0)
    for _ in range(rounds):
        for name, job in jobs.items():
            start = time.perf_counter()
            for _ in range(iters):
                job()
            seconds[name] += time.perf_counter() - start
        for name, job in (("naive_eval", naive_eval), ("vectorised_eval", ours_eval)):
            start = time.perf_counter()
            job()
            seconds[name] += time.perf_counter() - start
    it_s = {name: rounds * iters / seconds[name] for name in jobs}
    eval_s = {name: rounds * eval_tasks / seconds[name] for name in ("naive_eval", "vectorised_eval")}
    print(json.dumps({"device": "cpu (1 thread, shared 2-core machine)",
                      "naive_it_s": round(it_s["naive"], 3), "faithful_it_s": round(it_s["faithful"], 3),
                      "vectorised_it_s": round(it_s["vectorised"], 3),
                      "faithful_speedup": round(it_s["faithful"] / it_s["naive"], 3),
                      "vectorised_speedup": round(it_s["vectorised"] / it_s["naive"], 3),
                      "naive_eval_tasks_s": round(eval_s["naive_eval"], 3),
                      "vectorised_eval_tasks_s": round(eval_s["vectorised_eval"], 3),
                      "eval_speedup": round(eval_s["vectorised_eval"] / eval_s["naive_eval"], 3)}))


if __name__ == "__main__":
    main()
