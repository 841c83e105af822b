"""reference.py, the plain-PyTorch Reptile and FOMAML, computes what meta_train's faithful path computes.

Same initial weights, the same task and minibatch stream (the generator meta_train seeds), the same schedule, all
in float64: the final weights must agree to rounding, tensor by tensor. The last tests show the comparison can
fail: torch's own Adam, or an inner Adam state reset per task, trains a measurably different model.
"""
import functools

import pytest
import torch

from reptile_edu import meta_train, reference, set_seed
from reptile_edu.presets import preset
from reptile_edu.tasks import ImageDataset
from reptile_edu.train import build_model

try:
    from reptile_edu.presets import sine_config
except ImportError:
    from reptile_edu.config import sine_config

# Tolerances (float64, absolute). Largest differences seen: sine 1.1e-16, Omniglot 1.0e-14, each about a hundredth
# of its tolerance. Exception: the conv biases, which batch norm cancels. Their true gradient is 0, the computed one
# rounding noise of about 1e-15, and Adam divides it by sqrt(v) + eps, about eps: both runs move them by noise
# only (to about 1e-9 from 0). For them the test checks that they stayed at noise level, in both runs.
TOL = {"sine": 1e-14, "omniglot": 1e-12}
NOISE = 1e-7


def tiny_omniglot(classes=10, per_class=12, seed=0) -> ImageDataset:
    """Omniglot-shaped binary images (ink 0, background 255), random."""
    gen = torch.Generator().manual_seed(seed)
    images = (torch.rand(classes, per_class, 1, 28, 28, generator=gen) > 0.3).to(torch.uint8) * 255
    return ImageDataset(images, [f"c{i}" for i in range(classes)], "tiny/train")


DATA = tiny_omniglot()


def initial_params(config):
    """The seeded initialisation meta_train would draw, in float64."""
    return {k: v.double() for k, v in build_model(config).init_params(set_seed(config.seed)).items()}


@functools.lru_cache(maxsize=None)
def faithful_run(name):
    """meta_train's faithful path on CASES[name] from ``initial_params`` (run once per case: read, never modify)."""
    config = CASES[name].replace(path="faithful")
    return meta_train(config, params=initial_params(config), dataset=data(config)).params


def reference_run(name, inner=None):
    """reference.train on the same start and on the stream meta_train draws (its seeded generator)."""
    config = CASES[name]
    stream = reference.package_stream(config, set_seed(config.seed), data(config))
    return reference.train(config, stream, initial_params(config), inner=inner)


def data(config):
    return DATA if config.dataset == "omniglot" else None


def cancelled_by_batch_norm(name):
    return name.startswith("conv") and name.endswith(".b")


def max_difference(a, b):
    """Over the tensors compared at TOL."""
    return max((a[k] - b[k]).abs().max().item() for k in a if not cancelled_by_batch_norm(k))


def assert_equal(faithful, ours, tol):
    assert faithful.keys() == ours.keys()
    for k in faithful:
        assert faithful[k].dtype == ours[k].dtype == torch.float64
        if cancelled_by_batch_norm(k):  # started at 0: both must still be noise
            assert faithful[k].abs().max() < NOISE and ours[k].abs().max() < NOISE, k
        else:
            torch.testing.assert_close(ours[k], faithful[k], rtol=0, atol=tol, msg=lambda m: f"{k}: {m}")


def omniglot(algorithm, **kw):
    return preset("omniglot-5way", "smoke", algorithm=algorithm, meta_iters=3, meta_batch_size=2, **kw)


CASES = {
    "sine-serial-reptile-1": sine_config("reptile", "demo", meta_iters=1),
    "sine-serial-reptile-5": sine_config("reptile", "demo", meta_iters=5),
    "sine-batched-reptile-1": sine_config("reptile", "fast", meta_iters=1),
    "sine-batched-reptile-5": sine_config("reptile", "fast", meta_iters=5),
    "sine-fomaml-1": sine_config("fomaml", "fast", meta_iters=1),
    "sine-fomaml-5": sine_config("fomaml", "fast", meta_iters=5),
    "omniglot-reptile-3": omniglot("reptile"),
    "omniglot-fomaml-3": omniglot("fomaml"),
}


@pytest.mark.parametrize("name", CASES)
def test_reference_equals_the_faithful_path(name):
    config = CASES[name]
    faithful, ours = faithful_run(name), reference_run(name)
    assert max_difference(faithful, initial_params(config)) > 1e-4  # the run moved phi: the check has teeth
    assert_equal(faithful, ours, TOL[config.dataset])


def test_the_cases_cover_what_they_claim():
    assert CASES["sine-serial-reptile-5"].meta_batch_size == 1
    assert CASES["sine-batched-reptile-5"].meta_batch_size == 10
    assert CASES["sine-fomaml-5"].outer_optimizer == "adam" and CASES["sine-fomaml-5"].inner_optimizer == "sgd"
    for name in ("omniglot-reptile-3", "omniglot-fomaml-3"):
        c = CASES[name]
        assert (c.inner_optimizer, c.inner_state, c.outer_optimizer) == ("adam", "carry", "interpolate")
        assert c.meta_batch_size > 1 and c.inner_iters > 2


def test_algorithm_2_with_one_task_is_algorithm_1():
    """The serial step (Algorithm 1, as train() runs it for one task) and the batched step with n = 1 agree."""
    config = CASES["sine-serial-reptile-5"]
    params = initial_params(config)
    serial = reference.train(config, reference.package_stream(config, set_seed(config.seed)), params)
    phi_net = reference.load_params(reference.build_net(config).double(), params)
    net = reference.build_net(config).double()
    inner = reference.inner_optimizer(config, net.parameters())
    outer = reference.outer_optimizer(config, phi_net.parameters())
    stream = reference.package_stream(config, set_seed(config.seed))
    for i in range(config.meta_iters):
        reference.reptile_step(phi_net, net, inner, outer, reference.split_tasks(next(stream)),
                               reference.loss_fn(config), config.meta_step_at(i))
    assert_equal(serial, reference.to_params(phi_net, params), TOL["sine"])


def test_params_round_trip_through_the_module():
    for config in (CASES["sine-fomaml-1"], CASES["omniglot-reptile-3"], preset("miniimagenet-5way", "smoke")):
        params = initial_params(config)
        net = reference.load_params(reference.build_net(config).double(), params)
        back = reference.to_params(net, params)
        assert all(torch.equal(back[k], params[k]) for k in params)
        assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in params.values())


@pytest.mark.parametrize("config", [CASES["sine-fomaml-1"], CASES["omniglot-reptile-3"],
                                    preset("miniimagenet-5way", "smoke")], ids=["sine", "omniglot", "miniimagenet"])
def test_the_module_computes_the_package_network(config):
    params = initial_params(config)
    net = reference.load_params(reference.build_net(config).double(), params)
    shape = {"sine": (7, 1), "omniglot": (7, 1, 28, 28), "miniimagenet": (7, 3, 84, 84)}[config.dataset]
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    one_task = {k: v[None] for k, v in params.items()}  # the package's networks take a leading task dimension
    torch.testing.assert_close(net(x), build_model(config).forward(one_task, x[None])[0], rtol=0, atol=1e-13)


class ResetPerTask(reference.TFAdam):
    """The carried TF-Adam, except that it forgets its state after every k steps (= at every new task)."""

    def __init__(self, params, lr, k):
        super().__init__(params, lr)
        self.k, self.steps = k, 0

    def step(self):
        if self.steps % self.k == 0:
            self.state.clear()
        self.steps += 1
        super().step()


WRONG_INNER = {
    "torch-adam": lambda config, params: torch.optim.Adam(params, lr=config.inner_lr, betas=(0.0, 0.999)),
    "reset-per-task": lambda config, params: ResetPerTask(params, config.inner_lr, config.inner_iters),
}


@pytest.mark.parametrize("wrong", WRONG_INNER)
def test_a_different_inner_adam_is_detected(wrong):
    """What ports usually write does not pass the equality test above, by far."""
    faithful, ours = faithful_run("omniglot-reptile-3"), reference_run("omniglot-reptile-3", WRONG_INNER[wrong])
    assert max_difference(faithful, ours) > 1e4 * TOL["omniglot"]
    with pytest.raises(AssertionError):
        assert_equal(faithful, ours, TOL["omniglot"])


def test_the_reference_names_what_it_does_not_implement():
    with pytest.raises(ValueError, match="reptile and fomaml"):
        reference.train(sine_config("maml", meta_iters=1), iter([]), initial_params(sine_config()))
    config = omniglot("reptile", inner_state="reset")
    with pytest.raises(ValueError, match="inner_state='carry'"):
        reference.train(config, iter([]), initial_params(config))
