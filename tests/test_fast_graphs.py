"""The static (CUDA-graph) step against the per-iteration loop: the same run, bit for bit."""
import pytest
import torch

from reptile_edu import train
from reptile_edu.fast import graphs
from reptile_edu.presets import preset

CASES = {
    "reptile-carry": {},
    "reptile-reset": dict(inner_state="reset"),
    "reptile-sgd": dict(inner_optimizer="sgd", inner_lr=0.05),
    "fomaml": dict(algorithm="fomaml"),
    "fomaml-tail": dict(algorithm="fomaml", foml_tail=1),
    "joint-replacement": dict(algorithm="joint", replacement=True),
}


def config(device="cpu", **kw):
    fields = dict(meta_iters=11, meta_batch_size=3, num_classes=4, train_shots=3, inner_batch_size=5, inner_iters=3,
                  eval_inner_iters=3, device=device)
    return preset("omniglot-5way", "smoke", **{**fields, **kw})


def run(cfg, static: bool, monkeypatch, dataset):
    with monkeypatch.context() as m:
        m.setattr(graphs, "SYNC", 4)  # chunks of 4: boundaries at 4 and 8 fall inside the 11 iterations
        if not static:
            m.setattr(graphs, "supports", lambda config: False)
        events = []
        history = train.meta_train(cfg, callback=lambda e: events.append(e["iteration"]), dataset=dataset)
    assert events == list(range(1, cfg.meta_iters + 1))
    return history


@pytest.mark.parametrize("case", CASES)
def test_static_step_equals_the_per_iteration_loop(case, monkeypatch, tiny_omniglot):
    cfg = config(**CASES[case])
    assert graphs.supports(cfg)
    static, loop = run(cfg, True, monkeypatch, tiny_omniglot()), run(cfg, False, monkeypatch, tiny_omniglot())
    assert static.losses == loop.losses
    for k in loop.params:
        assert torch.equal(static.params[k], loop.params[k]), k
    if loop.inner_state is None:
        assert static.inner_state is None
    else:
        assert torch.equal(static.inner_state["t"], loop.inner_state["t"])
        for k, v in loop.inner_state["v"].items():
            assert torch.equal(static.inner_state["v"][k], v), k


def test_static_step_is_refused_where_it_does_not_apply():
    assert not graphs.supports(config(path="faithful"))
    assert not graphs.supports(config(outer_optimizer="adam"))
    assert not graphs.supports(config(algorithm="maml", inner_optimizer="sgd"))
    assert not graphs.supports(preset("sine", "smoke"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CUDA-graph replay)")
@pytest.mark.parametrize("seeds", [(), (0, 1, 2)])
def test_graph_replay_matches_the_eager_step_on_cuda(monkeypatch, tiny_omniglot, seeds):
    """On a GPU: captured replay against the same static step run eagerly, for one run and for three seeds'
    runs stacked (cuDNN may pick different kernels for the two, so equality is to float32 rounding, not bits)."""
    cfg = config("cuda", seeds=seeds)
    states = {}
    for capture in (True, False):
        state = train.new_state(cfg)
        runner = graphs.StaticStep(state, train.build_model(cfg), tiny_omniglot(), capture=capture)
        losses, diverged = runner.run(cfg.meta_iters)
        assert diverged is None and (runner.graph is not None) == capture
        states[capture] = (state.runs, losses)
    (graphed_runs, lg), (eager_runs, le) = states[True], states[False]
    torch.testing.assert_close(torch.tensor(lg), torch.tensor(le), rtol=1e-4, atol=1e-5)
    for graphed, eager in zip(graphed_runs, eager_runs, strict=True):
        for k in eager.phi:
            torch.testing.assert_close(graphed.phi[k], eager.phi[k], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(graphed.inner_state["t"], eager.inner_state["t"])
