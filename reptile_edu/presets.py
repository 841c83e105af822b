"""The official README commands as data, and the scales that shorten them.

Training is shared by the 1-shot and 5-shot rows and by both evaluation modes, exactly as the official
commands (they differ only in ``--shots``/``--transductive``, which act at evaluation). All image presets use
Adam with beta1 = 0, cycling minibatches, meta-step 1 -> 0, seed 0 (docs/paper.md §4).
"""
from __future__ import annotations

from .config import Config, budget

SINE_SCHEDULES = ("fast", "demo")


def sine_config(algorithm: str = "reptile", schedule: str = "fast", **overrides) -> Config:
    """The sine-toy runs of notebook 01 and ``python -m reptile_edu sine``.

    ``demo``: the demo script's schedule, one task per iteration, 30,000 iterations; Reptile and joint
    training interpolate with outer step 0.1 -> 0. ``fast``: the batched equivalent (Algorithm 2, meta-batch
    10, outer step 1 -> 0, 3,000 iterations), which reaches the demo's post-adaptation error in seconds
    (``benchmarks/sine.py``). FOMAML and MAML: the paper gives no sine settings; we choose an Adam outer
    optimiser with learning rate 1e-3 (annealed to 0) on the same inner loop (inner SGD 0.02, 5 minibatches
    of 10: 4 inner steps and the test batch); their ``fast`` schedule is 1,000 iterations of meta-batch 10
    (each iteration costs 2-3x Reptile's, and the chapter must run live). Smoke mode: 30 iterations.
    """
    if schedule not in SINE_SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SINE_SCHEDULES)} (got {schedule!r})")
    fast = schedule == "fast"
    fields = dict(preset="sine", algorithm=algorithm, meta_batch_size=10 if fast else 1,
                  meta_iters=budget(3_000 if fast else 30_000, 30), eval_interval=budget(300 if fast else 3_000, 10))
    if algorithm in ("fomaml", "maml"):
        fields.update(outer_optimizer="adam", meta_step_size=1e-3)
        if fast:
            fields.update(meta_iters=budget(1_000, 30), eval_interval=budget(100, 10))
    else:
        fields.update(meta_step_size=1.0 if fast else 0.1)
    fields.update(overrides)
    return Config(**fields)


_IMAGE = dict(inner_optimizer="adam", outer_optimizer="interpolate", meta_step_size=1.0, meta_step_size_final=0.0,
              meta_batch_size=5, eval_inner_iters=50)

PAPER = {
    # o15 / o55 (/ o15t): --classes 5 --train-shots 10 --inner-batch 10 --inner-iters 5 --learning-rate 0.001
    #   --meta-step 1 --meta-step-final 0 --meta-batch 5 --meta-iters 100000 --eval-batch 5 --eval-iters 50
    "omniglot-5way": dict(_IMAGE, dataset="omniglot", num_classes=5, num_shots=5, train_shots=10, inner_batch_size=10,
                          inner_iters=5, inner_lr=1e-3, meta_iters=100_000, eval_batch_size=5),
    # o120 / o520: --classes 20 --inner-batch 20 --inner-iters 10 --learning-rate 0.0005 --meta-iters 200000 --eval-batch 10
    "omniglot-20way": dict(_IMAGE, dataset="omniglot", num_classes=20, num_shots=5, train_shots=10,
                           inner_batch_size=20, inner_iters=10, inner_lr=5e-4, meta_iters=200_000, eval_batch_size=10),
    # m15 / m55: --train-shots 15 --inner-batch 10 --inner-iters 8 --learning-rate 0.001 --meta-iters 100000
    #   --eval-batch 5 (1-shot) / 15 (5-shot)
    "miniimagenet-5way": dict(_IMAGE, dataset="miniimagenet", num_classes=5, num_shots=5, train_shots=15,
                              inner_batch_size=10, inner_iters=8, inner_lr=1e-3, meta_iters=100_000, eval_batch_size=15),
    # Mini-ImageNet 10-way (ours): the published 10-way numbers (TPN, 2019) come with no command, so this is m15/m55
    # with --classes 10 and every other flag unchanged (docs/paper.md §4).
    "miniimagenet-10way": dict(_IMAGE, dataset="miniimagenet", num_classes=10, num_shots=5, train_shots=15,
                               inner_batch_size=10, inner_iters=8, inner_lr=1e-3, meta_iters=100_000,
                               eval_batch_size=15),
    # tieredImageNet 5-way and 10-way (ours): the Mini-ImageNet commands on tieredImageNet (TPN ran the official
    # code on it and gives no command either)
    "tieredimagenet-5way": dict(_IMAGE, dataset="tieredimagenet", num_classes=5, num_shots=5, train_shots=15,
                                inner_batch_size=10, inner_iters=8, inner_lr=1e-3, meta_iters=100_000,
                                eval_batch_size=15),
    "tieredimagenet-10way": dict(_IMAGE, dataset="tieredimagenet", num_classes=10, num_shots=5, train_shots=15,
                                 inner_batch_size=10, inner_iters=8, inner_lr=1e-3, meta_iters=100_000,
                                 eval_batch_size=15),
    # Figure 3: --sgd --seed 0 --inner-batch 25 --learning-rate 0.003 --meta-step-final 0 --meta-iters 40000
    #   --eval-batch 25 --eval-iters 5; 5-way 5-shot, meta-batch 1; per run --inner-iters k --train-shots 5k [--foml]
    #   --meta-step eps. The 0.003 applies to a loss SUMMED over 25 examples (our image loss is summed too).
    "omniglot-fig3": dict(dataset="omniglot", inner_optimizer="sgd", outer_optimizer="interpolate", num_classes=5,
                          num_shots=5, inner_batch_size=25, inner_lr=3e-3, meta_step_size_final=0.0,
                          meta_batch_size=1, meta_iters=40_000, eval_batch_size=25, eval_inner_iters=5),
}

# Evaluation minibatch per (preset, shots): the official commands use 15 for Mini-ImageNet 5-shot only.
EVAL_BATCH = {"omniglot-5way": {1: 5, 5: 5}, "omniglot-20way": {1: 10, 5: 10}, "miniimagenet-5way": {1: 5, 5: 15},
              "miniimagenet-10way": {1: 5, 5: 15}, "tieredimagenet-5way": {1: 5, 5: 15},
              "tieredimagenet-10way": {1: 5, 5: 15}, "omniglot-fig3": {5: 25}}

# Figure 3's ten runs (README "Comparing different inner-loop gradient combinations"): k, FOMAML?, meta-step.
FIG3_VARIANTS = {
    "g1": (1, False, 0.25), "g1+g2": (2, False, 0.25), "(g1+g2)/2": (2, False, 0.125), "g2": (2, True, 0.25),
    "g1+g2+g3": (3, False, 0.25), "(g1+g2+g3)/3": (3, False, 0.08325), "g3": (3, True, 0.25),
    "g1+g2+g3+g4": (4, False, 0.25), "(g1+g2+g3+g4)/4": (4, False, 0.0625), "g4": (4, True, 0.25),
}

# CPU-sized schedules (meta-iterations); a shortened schedule anneals the meta-step over its own length.
LAPTOP_ITERS = {"sine": 3_000, "omniglot-5way": 3_000, "omniglot-20way": 1_000, "miniimagenet-5way": 1_000,
                "miniimagenet-10way": 1_000, "tieredimagenet-5way": 1_000, "tieredimagenet-10way": 1_000,
                "omniglot-fig3": 3_000}
SMOKE_ITERS = 20
SCALES = ("paper", "laptop", "smoke")


def preset(name: str, scale: str = "paper", variant: str | None = None, **overrides) -> Config:
    """The Config of a named preset at a scale, with field overrides (e.g. ``meta_iters=5000``)."""
    names = ("sine",) + tuple(PAPER)
    if name not in names:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(names)}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    if name == "sine":
        fields = sine_config("reptile", "demo", meta_iters=30_000, eval_interval=3_000).to_dict()  # not smoke-scaled
    else:
        fields = dict(PAPER[name], preset=name)
    if name == "omniglot-fig3":
        if variant not in FIG3_VARIANTS:
            raise ValueError(f"preset omniglot-fig3 needs a variant: one of {', '.join(FIG3_VARIANTS)}")
        k, foml, eps = FIG3_VARIANTS[variant]
        # FOMAML's g_k is the last of k steps: the official --foml runs k steps and keeps the last displacement.
        fields.update(inner_iters=k, train_shots=5 * k, algorithm="fomaml" if foml else "reptile", meta_step_size=eps)
    elif variant is not None:
        raise ValueError(f"--variant applies to omniglot-fig3 only (got preset {name!r})")
    if scale != "paper":
        fields["meta_iters"] = LAPTOP_ITERS[name] if scale == "laptop" else SMOKE_ITERS
        fields["eval_interval"] = max(1, fields["meta_iters"] // 10)
    fields.update(overrides)
    return Config(**fields)


def eval_batch_size(name: str, shots: int, default: int) -> int:
    """The official evaluation minibatch for a preset and shot count (``default`` where none is official)."""
    return EVAL_BATCH.get(name, {}).get(shots, default)
