"""The official evaluation protocol: batch composition of both modes, Adam-state handling, fixed task lists, CI."""
import math

import pytest
import torch

from reptile_edu import evaluation, inner
from reptile_edu.models import OmniglotCNN, stack
from reptile_edu.tasks import ImageDataset


class Tiny(OmniglotCNN):
    channels = 3
    features = 12


def toy(num_classes=8, per_class=6):
    """Pixel [0, 0, 0] = flat image id, pixel [0, 0, 1] = class."""
    images = torch.randint(0, 256, (num_classes, per_class, 1, 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    images[:, :, 0, 0, 0] = torch.arange(num_classes * per_class, dtype=torch.uint8).reshape(num_classes, per_class)
    images[:, :, 0, 0, 1] = torch.arange(num_classes, dtype=torch.uint8)[:, None]
    return ImageDataset(images, [f"c{i}" for i in range(num_classes)], "toy")


def ids(x):
    return x[..., 0, 0, 0].mul(255).round().long()


class Spy(Tiny):
    """Records the image ids of every forward batch, and whether it was a training (grad) call."""

    def __init__(self, n):
        super().__init__(n)
        self.calls = []

    def forward(self, params, x):
        self.calls.append((torch.is_grad_enabled(), ids(x)))
        return super().forward(params, x)


def test_both_modes_see_exactly_the_batches_the_spec_says():
    N, K, steps, batch = 3, 2, 4, 4
    model = Spy(N)
    phi = model.init_params(torch.Generator().manual_seed(0))
    evaluation.evaluate(model, phi, None, toy(), num_classes=N, num_shots=K, num_tasks=2, eval_batch_size=batch,
                        eval_inner_iters=steps, inner_lr=1e-3, eval_seed=3, chunk_size=2)
    train, test = [c for c in model.calls if c[0]], [c[1] for c in model.calls if not c[0]]
    assert len(train) == steps and all(ids_.shape == (2, batch) for _, ids_ in train)
    assert len(test) == 1 + N  # one transductive forward, then one per query
    queries = test[0]
    assert queries.shape == (2, N)
    for t in range(2):
        support = set(torch.cat([ids_[t] for _, ids_ in train]).tolist())
        assert len(support) <= N * K and not support & set(queries[t].tolist())
        for j, rows in enumerate(test[1:]):
            assert rows.shape == (2, N * K + 1) and rows[t, -1] == queries[t, j]  # the query is the last row
            assert set(rows[t, :-1].tolist()) == set(test[1][t, :-1].tolist()) and len(set(rows[t, :-1].tolist())) == N * K
            assert support <= set(rows[t, :-1].tolist())  # fine-tuning used only the support set
    # the transductive batch is the N queries alone: one image of each of the N distinct classes
    assert all(len(set(q.tolist())) == N for q in queries)


def test_chunking_does_not_change_the_task_list_or_the_results():
    model = Tiny(3)
    phi = {k: v.double() for k, v in model.init_params(torch.Generator().manual_seed(0)).items()}
    args = dict(num_classes=3, num_shots=1, num_tasks=5, eval_batch_size=3, eval_inner_iters=3, inner_lr=1e-2,
                eval_seed=7)
    a = evaluation.evaluate(model, phi, None, toy(), chunk_size=5, **args)
    b = evaluation.evaluate(model, phi, None, toy(), chunk_size=2, **args)
    for mode in evaluation.MODES:
        assert torch.equal(a["per_task"][mode], b["per_task"][mode])
        assert a[mode]["tasks"] == 5


def test_fine_tuning_starts_from_the_carried_adam_state_and_never_changes_it():
    model = Tiny(3)
    phi = model.init_params(torch.Generator().manual_seed(0))
    state = {"v": {k: torch.full((1, *p.shape), 5.0) for k, p in phi.items()}, "t": torch.tensor([100.0],
                                                                                                   dtype=torch.float64)}
    before = {k: v.clone() for k, v in state["v"].items()}
    seen = []
    original = inner.adam_step

    def spy(model_, params, st, batch, lr):
        seen.append(st["t"].clone())
        return original(model_, params, st, batch, lr)

    inner.adam_step = spy
    try:
        evaluation.evaluate(model, phi, state, toy(), num_classes=3, num_shots=1, num_tasks=2, eval_batch_size=3,
                            eval_inner_iters=2, inner_lr=1e-3, chunk_size=2)
    finally:
        inner.adam_step = original
    assert seen[0].tolist() == [100.0, 100.0] and seen[1].tolist() == [101.0, 101.0]
    assert state["t"].tolist() == [100.0] and all(torch.equal(before[k], state["v"][k]) for k in before)


def test_summary_is_mean_and_196_standard_errors_in_percent():
    per_task = torch.tensor([1.0, 0.8, 0.6, 1.0])
    s = evaluation.summarise(per_task)
    assert s["accuracy"] == pytest.approx(85.0) and s["tasks"] == 4
    assert s["ci95"] == pytest.approx(1.96 * (per_task * 100).std().item() / math.sqrt(4))


def test_predict_modes_use_the_same_weights():
    model = Tiny(3)
    params = stack(model.init_params(torch.Generator().manual_seed(0)), 2)
    sx, qx = torch.rand(2, 6, 1, 28, 28), torch.rand(2, 3, 1, 28, 28)
    preds = evaluation.predict(model, params, sx, qx)
    assert preds["transductive"].shape == preds["non-transductive"].shape == (2, 3)
    with torch.no_grad():
        last = model.forward(params, torch.cat([sx, qx[:, 1:2]], 1))[:, -1].argmax(-1)
    assert torch.equal(preds["non-transductive"][:, 1], last)


def test_bad_input_names_the_parameter():
    model = Tiny(3)
    with pytest.raises(ValueError, match="num_tasks"):
        evaluation.evaluate(model, model.init_params(), None, toy(), num_classes=3, num_shots=1, num_tasks=0,
                            eval_batch_size=3, eval_inner_iters=2, inner_lr=1e-3)
    with pytest.raises(ValueError, match="num_shots"):
        evaluation.evaluate(model, model.init_params(), None, toy(), num_classes=3, num_shots=0, num_tasks=2,
                            eval_batch_size=3, eval_inner_iters=2, inner_lr=1e-3)


def test_cpu_chunk_size_is_measured_once_per_setting_and_shared_out_over_the_workers(monkeypatch):
    model, data = Tiny(3), toy()
    phi = model.init_params(torch.Generator().manual_seed(0))
    setting = dict(num_classes=3, num_shots=1, eval_batch_size=3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # what evaluate measures with when it runs one chunk per core
        chosen = evaluation.choose_chunk_size(model, phi, data, **setting)
        assert chosen in evaluation.CHUNK_CANDIDATES

        def no_clock():
            raise AssertionError("a measured setting was timed again")

        monkeypatch.setattr(evaluation.time, "perf_counter", no_clock)
        assert evaluation.choose_chunk_size(model, phi, data, **setting) == chosen
        monkeypatch.undo()
        for cores in (1, 2):
            torch.set_num_threads(cores)
            out = evaluation.evaluate(model, phi, None, data, num_tasks=7, eval_inner_iters=2, inner_lr=1e-3, **setting)
            assert out["chunk_size"] == min(chosen, -(-7 // cores))  # the result says which chunk ran
    finally:
        torch.set_num_threads(threads)


def test_chunks_run_in_parallel_on_a_cpu_with_the_same_results_and_threads_restored():
    model, data = Tiny(3), toy()
    phi = {k: v.double() for k, v in model.init_params(torch.Generator().manual_seed(0)).items()}
    args = dict(num_classes=3, num_shots=1, num_tasks=7, eval_batch_size=3, eval_inner_iters=3, inner_lr=1e-2,
                chunk_size=2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = evaluation.evaluate(model, phi, None, data, **args)
        torch.set_num_threads(3)  # three chunks at once, one thread each
        parallel = evaluation.evaluate(model, phi, None, data, **args)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    for mode in evaluation.MODES:
        assert torch.equal(serial["per_task"][mode], parallel["per_task"][mode])  # in task order


def test_an_error_in_a_parallel_chunk_reaches_the_caller_and_restores_the_threads():
    class Broken(Tiny):
        def forward(self, params, x):
            raise RuntimeError("boom")

    model, threads = Broken(3), torch.get_num_threads()
    phi = model.init_params(torch.Generator().manual_seed(0))
    try:
        torch.set_num_threads(2)
        with pytest.raises(RuntimeError, match="boom"):
            evaluation.evaluate(model, phi, None, toy(), num_classes=3, num_shots=1, num_tasks=6, eval_batch_size=3,
                                eval_inner_iters=2, inner_lr=1e-3, chunk_size=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
