"""Episode and minibatch sampling: the official semantics per task, batched over tasks, on a toy dataset.

The toy dataset (the ``toy`` fixture) encodes (class, image) in the pixels, so every sampled example can be traced
back (``ids``).
"""
import pytest
import torch

from reptile_edu.tasks import (ImageDataset, eval_episodes, sample_mini_datasets, stream_indices,
                               support_batches, training_batches)

P = 12  # images per class of the toy dataset (its default: 30 classes x 12)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_cycling_worked_example():
    """6 samples, batch 4, 3 batches: batch 0 = epoch 0 [0:4]; batch 1 = epoch 0 [4:6] + epoch 1 [0:2]
    (it straddles the boundary, as the official ``_mini_batches`` carries the partial batch over);
    batch 2 = epoch 1 [2:6]. Every epoch is a permutation of the 6 samples."""
    pos = stream_indices(2, 6, 4, 3, gen())
    for stream in pos.reshape(2, -1):
        assert sorted(stream[:6].tolist()) == list(range(6))  # epoch 0
        assert sorted(stream[6:12].tolist()) == list(range(6))  # epoch 1: batch 1's tail, then batch 2
    assert pos.shape == (2, 3, 4)


def test_cycling_matches_a_python_port_of_the_official_loop():
    """Same permutations fed to the official loop (a transcription of ``_mini_batches``) give the same batches."""
    samples, batch, num_batches = 7, 3, 5
    pos = stream_indices(1, samples, batch, num_batches, gen(3))[0]
    epochs = iter(pos.flatten().split(samples))  # the permutations our stream used, one per epoch

    def official(samples_list):
        cur, count = [], 0
        while True:
            perm = next(epochs).tolist()  # stands in for random.shuffle
            for sample in (samples_list[i] for i in perm):
                cur.append(sample)
                if len(cur) < batch:
                    continue
                yield cur
                cur, count = [], count + 1
                if count == num_batches:
                    return

    assert [b for b in official(list(range(samples)))] == pos.tolist()


def test_replacement_batches_have_no_repeats_within_a_batch():
    pos = stream_indices(50, 6, 4, 10, gen(), replacement=True)
    assert all(len(set(b)) == 4 for b in pos.reshape(-1, 4).tolist())
    with pytest.raises(ValueError, match="batch_size"):
        stream_indices(1, 6, 7, 1, gen(), replacement=True)


def test_mini_datasets_distinct_classes_and_images(toy):
    flat = sample_mini_datasets(toy(), 5, 4, 200, gen())
    cls, img = flat // P, flat % P
    for t in range(200):
        assert len(set(cls[t, :, 0].tolist())) == 5 and (cls[t] == cls[t, :, :1]).all()
        assert all(len(set(row)) == 4 for row in img[t].tolist())
    # every class and every label position is used: the class order (= label) is uniformly random
    assert len(set(cls[:, 0, 0].tolist())) > 20


@pytest.mark.parametrize("replacement", [False, True])
def test_training_batches_shapes_labels_and_consistency(replacement, toy, ids):
    data = toy()
    batches = training_batches(data, 5, 4, 6, 7, 3, gen(), replacement=replacement)
    assert len(batches) == 7
    seen = {}
    for x, y in batches:
        assert x.shape == (3, 6, 1, 2, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert 0 <= x.min() and x.max() <= 1 and set(y.unique().tolist()) <= set(range(5))
        for t, (pairs, labels) in enumerate(zip(ids(x).tolist(), y.tolist())):
            for (c, i), label in zip(pairs, labels):
                assert seen.setdefault((t, label), c) == c  # one class per label within a task
                seen.setdefault((t, "images", c), set()).add(i)
    for t in range(3):
        assert len({seen[(t, lab)] for lab in range(5) if (t, lab) in seen}) == len(
            [lab for lab in range(5) if (t, lab) in seen])
        assert all(len(v) <= 4 for k, v in seen.items() if k[0] == t and k[1] == "images")  # train_shots images


def test_cycling_covers_the_mini_dataset_once_per_epoch(toy, ids):
    # 5 classes x 4 shots = 20 examples, batches of 10, 2 batches = exactly one epoch: each example once
    x, y = zip(*training_batches(toy(), 5, 4, 10, 2, 4, gen()))
    pairs = ids(torch.cat(x, 1))
    for t in range(4):
        assert len(set(map(tuple, pairs[t].tolist()))) == 20
        assert torch.bincount(torch.cat(y, 1)[t], minlength=5).tolist() == [4] * 5


def test_foml_tail_is_the_reserved_shots_and_never_overlaps(toy, ids):
    N, K, S, k = 5, 6, 2, 4
    batches = training_batches(toy(), N, K, 3, k, 8, gen(), foml_tail=S)
    assert len(batches) == k and batches[-1][0].shape[1] == N * S and batches[0][0].shape[1] == 3
    tail_x, tail_y = batches[-1]
    assert tail_y[0].tolist() == [0, 1, 2, 3, 4] * S  # shot-major, as the official _split_train_test
    for t in range(8):
        tail = set(map(tuple, ids(tail_x)[t].tolist()))
        body = {p for x, _ in batches[:-1] for p in map(tuple, ids(x)[t].tolist())}
        assert len(tail) == N * S and tail.isdisjoint(body)
    with pytest.raises(ValueError, match="foml_tail"):
        training_batches(toy(), N, K, 3, k, 1, gen(), foml_tail=K)


def test_eval_episodes_support_and_query(toy, ids):
    sx, sy, qx, qy = eval_episodes(toy(), 5, 3, 50, gen())
    assert sx.shape == (50, 15, 1, 2, 2) and qx.shape == (50, 5, 1, 2, 2)
    assert sy[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4] and qy[0].tolist() == [0, 1, 2, 3, 4]
    s, q = ids(sx), ids(qx)
    for t in range(50):
        classes = q[t, :, 0].tolist()
        assert len(set(classes)) == 5
        assert s[t, :, 0].tolist() == [c for c in classes for _ in range(3)]  # support label = query label
        assert set(map(tuple, s[t].tolist())).isdisjoint(map(tuple, q[t].tolist()))
        assert len(set(map(tuple, s[t].tolist()))) == 15


def test_support_batches_stream_over_each_tasks_support(toy, ids):
    sx, sy, _, _ = eval_episodes(toy(), 5, 1, 4, gen())
    batches = support_batches(sx, sy, 3, 5, gen(1))
    x = torch.cat([b[0] for b in batches], 1)
    y = torch.cat([b[1] for b in batches], 1)
    assert x.shape == (4, 15, 1, 2, 2)
    for t in range(4):
        assert (ids(x[t])[:, 0] == ids(sx[t])[y[t], 0]).all()  # each example keeps its label
        assert sorted(y[t, :5].tolist()) == [0, 1, 2, 3, 4]  # first epoch: the whole 5-example support


def test_deterministic_for_a_seed_and_batching_keeps_per_task_semantics(toy):
    a = training_batches(toy(), 5, 4, 6, 3, 5, gen(7))
    b = training_batches(toy(), 5, 4, 6, 3, 5, gen(7))
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    c = training_batches(toy(), 5, 4, 6, 3, 5, gen(8))
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, c))


def test_bad_requests_name_the_problem_and_the_fix(toy):
    with pytest.raises(ValueError, match="num_classes.*only 30 classes"):
        training_batches(toy(), 31, 4, 5, 2, 1, gen())
    with pytest.raises(ValueError, match="num_shots.*12 images per class"):
        training_batches(toy(), 5, 13, 5, 2, 1, gen())
    with pytest.raises(ValueError, match="plus 1 query.*num_shots <= 11"):
        eval_episodes(toy(), 5, 12, 2, gen())
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(torch.zeros(2, 2, 1, 2, 2), ["a", "b"], "float")


def test_floats_only_for_the_batch(toy):
    data = toy()
    x, _ = training_batches(data, 5, 4, 6, 1, 2, gen())[0]
    assert data.images.dtype == torch.uint8 and x.numel() == 2 * 6 * 4


def test_plots_draw_an_episode_drawers_and_rotations(toy):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reptile_edu import plots

    data = toy()
    rotated = ImageDataset(data.images[:8], data.class_names[:8], "rot", (0, 90, 180, 270))
    figs = [plots.plot_episode(*eval_episodes(data, 3, 2, 1, gen())), plots.plot_drawers(data, 1),
            plots.plot_rotations(rotated, 1)]
    assert [len(f.axes) for f in figs] == [3 * 3, 2 * 10, 4 * 3]  # grids: 3 classes x (2 shots + query), 12 drawers in rows of 10
    for f in figs:
        plt.close(f)
