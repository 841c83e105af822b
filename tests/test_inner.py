"""The inner loop's optimiser state (``inner``): how the per-task Adam states of a meta-batch merge into the one
carried to the next meta-iteration."""
import torch

from reptile_edu import inner


def test_merged_carry_is_the_serial_moving_average_of_the_tasks_squared_gradients():
    b = inner.ADAM_BETA2
    start = {"v": {"w": torch.tensor([[2.0]], dtype=torch.float64)}, "t": torch.tensor([5.0], dtype=torch.float64)}
    # two tasks, k = 2 steps each, from v0 = 2: v_j = b^2 v0 + c_j
    c = [3.0, 7.0]
    end = {"v": {"w": torch.tensor([[b * b * 2 + c[0]], [b * b * 2 + c[1]]], dtype=torch.float64)},
           "t": torch.tensor([7.0, 7.0], dtype=torch.float64)}
    merged = inner.merge_states(start, end, steps=2)
    assert merged["t"].tolist() == [9.0]
    torch.testing.assert_close(merged["v"]["w"], torch.tensor([[b ** 4 * 2 + b * b * c[0] + c[1]]],
                                                              dtype=torch.float64))
    single = {"v": {"w": end["v"]["w"][:1]}, "t": end["t"][:1]}
    torch.testing.assert_close(inner.merge_states(start, single, steps=2)["v"]["w"], single["v"]["w"])


def test_the_whole_model_update_of_a_gpu_equals_the_per_tensor_update(monkeypatch):
    """The GPU's layout (one concatenated vector, ``inner.whole_model``) runs here by forcing it: the same SGD and
    TF-Adam steps, bit for bit, and the parameters stay leaves that the next step can differentiate."""
    from reptile_edu.models import OmniglotCNN, stack

    model = OmniglotCNN(5)
    params = stack({k: v.double() for k, v in model.init_params(torch.Generator().manual_seed(0)).items()}, 3)
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.rand(3, 10, 1, 28, 28, generator=gen, dtype=torch.float64),
                torch.randint(0, 5, (3, 10), generator=gen)) for _ in range(3)]
    runs = {}
    for whole in (False, True):
        monkeypatch.setattr(inner, "whole_model", lambda params, whole=whole: whole)
        adam, state, losses = inner.run(model, params, batches, "adam", 1e-3)
        sgd, _, _ = inner.run(model, params, batches, "sgd", 1e-2)
        runs[whole] = adam, state, sgd, losses
    (a0, s0, g0, l0), (a1, s1, g1, l1) = runs[False], runs[True]
    assert torch.equal(l0, l1) and torch.equal(s0["t"], s1["t"])
    for k in params:
        assert torch.equal(a0[k], a1[k]) and torch.equal(s0["v"][k], s1["v"][k]) and torch.equal(g0[k], g1[k]), k
        assert a1[k].is_leaf and a1[k].requires_grad
    assert not torch.equal(a0["dense.w"], params["dense.w"])  # the steps moved the weights
