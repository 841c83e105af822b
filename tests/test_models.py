"""The image networks: the spec's parameter counts, TF initialisation, per-task batch norm, summed loss.

The folded forward (tasks as channel groups) is checked against plain ``torch.nn`` layers run task by task.
"""
import math

import pytest
import torch
from torch import nn

from reptile_edu.models import TF_BN_EPSILON, MiniImageNetCNN, OmniglotCNN, num_parameters, stack


@pytest.mark.parametrize("model, count", [(OmniglotCNN(5), 113_221), (OmniglotCNN(20), 117_076),
                                          (MiniImageNetCNN(5), 34_661)])
def test_parameter_counts_match_the_spec(model, count):
    assert num_parameters(model.init_params(torch.Generator().manual_seed(0))) == count


def test_tf_default_initialisation():
    params = OmniglotCNN(5).init_params(torch.Generator().manual_seed(0))
    for i in range(4):
        fan = 9 * (1 if i == 0 else 64) + 9 * 64
        w = params[f"conv{i}.w"]
        assert w.abs().max() <= math.sqrt(6 / fan) and w.abs().max() > 0.9 * math.sqrt(6 / fan)
        assert (params[f"conv{i}.b"] == 0).all() and (params[f"bn{i}.beta"] == 0).all()
        assert (params[f"bn{i}.gamma"] == 1).all()
    assert (params["dense.b"] == 0).all() and params["dense.w"].abs().max() <= math.sqrt(6 / (256 + 5))


def _reference(model, params, x):
    """The same network as ``torch.nn`` modules, for ONE task (unbatched params, x [B, C, H, W])."""
    layers, in_ch = [], model.in_channels
    for i in range(4):
        conv = nn.Conv2d(in_ch, model.channels, 3, model.stride, padding=1)
        bn = nn.BatchNorm2d(model.channels, eps=TF_BN_EPSILON, track_running_stats=False)
        conv.weight.data, conv.bias.data = params[f"conv{i}.w"], params[f"conv{i}.b"]
        bn.weight.data, bn.bias.data = params[f"bn{i}.gamma"], params[f"bn{i}.beta"]
        layers += [conv, bn] + ([nn.MaxPool2d(2, 2, ceil_mode=True)] if model.pool else []) + [nn.ReLU()]
        in_ch = model.channels
    h = nn.Sequential(*layers)(x).flatten(1)
    assert h.shape[1] == model.features  # 256 (Omniglot), 1152 (Mini-ImageNet, ceil-mode pooling)
    return h @ params["dense.w"] + params["dense.b"]


@pytest.mark.parametrize("model, shape", [(OmniglotCNN(5), (1, 28, 28)), (MiniImageNetCNN(5), (3, 84, 84))])
def test_folded_forward_equals_per_task_torch_nn(model, shape):
    gen = torch.Generator().manual_seed(1)
    per_task = [{k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in model.init_params(gen).items()}
                for _ in range(3)]
    params = {k: torch.stack([p[k] for p in per_task]) for k in per_task[0]}
    x = torch.rand(3, 4, *shape, generator=gen)
    with torch.no_grad():
        logits = model.forward(params, x)
        assert logits.shape == (3, 4, 5)
        for t in range(3):
            torch.testing.assert_close(logits[t], _reference(model, per_task[t], x[t]), rtol=1e-4, atol=1e-4)


def test_batch_norm_uses_each_tasks_own_batch_statistics():
    """Task 0's logits must not change when task 1's images change (no statistics shared across tasks)."""
    model = OmniglotCNN(5)
    params = stack(model.init_params(torch.Generator().manual_seed(0)), 2)
    x = torch.rand(2, 6, 1, 28, 28)
    y = x.clone()
    y[1] = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        a, b = model.forward(params, x), model.forward(params, y)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    assert not torch.allclose(a[1], b[1])


def test_loss_is_the_per_task_sum_of_cross_entropies():
    model = OmniglotCNN(5)
    params = stack(model.init_params(torch.Generator().manual_seed(0)), 2)
    x, y = torch.rand(2, 7, 1, 28, 28), torch.randint(0, 5, (2, 7))
    with torch.no_grad():
        logits = model.forward(params, x)
        expected = torch.stack([nn.functional.cross_entropy(logits[t], y[t], reduction="sum") for t in range(2)])
        torch.testing.assert_close(model.loss(params, x, y), expected)


def test_bad_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        OmniglotCNN(1)
