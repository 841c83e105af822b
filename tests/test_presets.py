"""Presets against the official README commands (docs/paper.md §4), flag by flag."""
import pytest

from reptile_edu.presets import FIG3_VARIANTS, PAPER, preset

# (preset, shots, official flags), as in docs/paper.md §4; args.py defaults fill in what a command omits.
OFFICIAL = {
    "o15": ("omniglot-5way", 1, "--shots 1 --classes 5 --train-shots 10 --inner-batch 10 --inner-iters 5 "
            "--learning-rate 0.001 --meta-step 1 --meta-step-final 0 --meta-batch 5 --meta-iters 100000 "
            "--eval-batch 5 --eval-iters 50"),
    "o55": ("omniglot-5way", 5, "--train-shots 10 --inner-batch 10 --inner-iters 5 --learning-rate 0.001 "
            "--meta-step 1 --meta-step-final 0 --meta-batch 5 --meta-iters 100000 --eval-batch 5 --eval-iters 50"),
    "o120": ("omniglot-20way", 1, "--shots 1 --classes 20 --train-shots 10 --inner-batch 20 --inner-iters 10 "
             "--learning-rate 0.0005 --meta-step 1 --meta-step-final 0 --meta-batch 5 --meta-iters 200000 "
             "--eval-batch 10 --eval-iters 50"),
    "o520": ("omniglot-20way", 5, "--classes 20 --train-shots 10 --inner-batch 20 --inner-iters 10 "
             "--learning-rate 0.0005 --meta-step 1 --meta-step-final 0 --meta-batch 5 --meta-iters 200000 "
             "--eval-batch 10 --eval-iters 50"),
    "m15": ("miniimagenet-5way", 1, "--shots 1 --inner-batch 10 --inner-iters 8 --meta-step 1 --meta-batch 5 "
            "--meta-iters 100000 --eval-batch 5 --eval-iters 50 --learning-rate 0.001 --meta-step-final 0 "
            "--train-shots 15"),
    "m55": ("miniimagenet-5way", 5, "--inner-batch 10 --inner-iters 8 --meta-step 1 --meta-batch 5 "
            "--meta-iters 100000 --eval-batch 15 --eval-iters 50 --learning-rate 0.001 --meta-step-final 0 "
            "--train-shots 15"),
}
# ours: m15 / m55 with --classes 10 (no 10-way command is published), and tieredImageNet with the same commands
OFFICIAL.update(m110=("miniimagenet-10way", 1, OFFICIAL["m15"][2] + " --classes 10"),
                m510=("miniimagenet-10way", 5, OFFICIAL["m55"][2] + " --classes 10"))
for _run, (_name, _shots, _flags) in list(OFFICIAL.items()):
    if _name.startswith("miniimagenet"):
        OFFICIAL["t" + _run[1:]] = (_name.replace("miniimagenet", "tieredimagenet"), _shots, _flags)
DEFAULTS = {"--classes": 5, "--shots": 5}
FIELD = {"--classes": "num_classes", "--train-shots": "train_shots", "--inner-batch": "inner_batch_size",
         "--inner-iters": "inner_iters", "--learning-rate": "inner_lr", "--meta-step": "meta_step_size",
         "--meta-step-final": "meta_step_size_final", "--meta-batch": "meta_batch_size", "--meta-iters": "meta_iters",
         "--eval-iters": "eval_inner_iters"}


@pytest.mark.parametrize("run", OFFICIAL)
def test_preset_matches_the_official_command(run):
    from reptile_edu.presets import eval_batch_size
    name, shots, flags = OFFICIAL[run]
    words = flags.split()
    given = dict(DEFAULTS, **{words[i]: float(words[i + 1]) for i in range(0, len(words), 2)})
    config = preset(name)
    assert int(given["--shots"]) == shots
    for flag, field in FIELD.items():
        assert getattr(config, field) == pytest.approx(given[flag]), (run, flag)
    assert eval_batch_size(name, shots, config.eval_batch_size) == given["--eval-batch"]
    assert config.inner_optimizer == "adam" and config.outer_optimizer == "interpolate" and config.seed == 0
    assert not config.replacement and config.foml_tail is None


def test_fig3_variants_are_the_ten_official_runs():
    assert len(FIG3_VARIANTS) == 10
    for variant, (k, foml, eps) in FIG3_VARIANTS.items():
        c = preset("omniglot-fig3", variant=variant)
        assert (c.inner_iters, c.train_shots, c.meta_step_size) == (k, 5 * k, eps)
        assert c.algorithm == ("fomaml" if foml else "reptile")
        assert (c.inner_optimizer, c.inner_lr, c.inner_batch_size, c.meta_batch_size, c.meta_iters) == \
            ("sgd", 0.003, 25, 1, 40_000)
        assert (c.eval_batch_size, c.eval_inner_iters, c.meta_step_size_final) == (25, 5, 0.0)


@pytest.mark.parametrize("name", ["sine"] + list(PAPER))
def test_scales_shorten_the_schedule_and_keep_the_rest(name):
    variant = "g1+g2" if name == "omniglot-fig3" else None
    paper, laptop, smoke = (preset(name, s, variant=variant) for s in ("paper", "laptop", "smoke"))
    assert smoke.meta_iters < laptop.meta_iters < paper.meta_iters
    assert laptop.replace(meta_iters=paper.meta_iters, eval_interval=paper.eval_interval) == paper
    assert smoke.meta_step_at(0) == paper.meta_step_size  # annealed over the shortened length
    assert smoke.meta_step_at(smoke.meta_iters - 1) < 0.1 * paper.meta_step_size


def test_bad_preset_names_say_what_exists():
    with pytest.raises(ValueError, match="omniglot-5way"):
        preset("omniglot")
    with pytest.raises(ValueError, match="scale"):
        preset("omniglot-5way", scale="huge")
    with pytest.raises(ValueError, match="variant"):
        preset("omniglot-fig3")
    with pytest.raises(ValueError, match="variant"):
        preset("omniglot-5way", variant="g1")
