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
