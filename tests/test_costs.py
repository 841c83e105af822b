"""Cost measurement: the autograd-graph meter, MAML's memory growing with k, the results files' shape."""
import json
from pathlib import Path

import pytest
import torch

from reptile_edu import costs
from reptile_edu.config import COMPARED

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "costs"


def test_meter_counts_each_saved_storage_once_and_releases_it():
    x = torch.randn(1000, requires_grad=True)
    with costs.SavedTensorMeter() as meter:
        y = (x * x).sum()  # mul saves x twice: one storage, 4,000 bytes
        assert meter.live == meter.peak == 4000
        y.backward()  # the graph is freed: nothing is held any more
    assert meter.live == 0 and meter.peak == 4000
    assert torch.allclose(x.grad, 2 * x)


def test_maml_graph_memory_grows_with_k_first_order_does_not():
    saved = {alg: [] for alg in COMPARED}
    for k in (2, 4, 8):
        model, phi, batches = costs.sine_problem(k)
        for alg in COMPARED:
            saved[alg].append(costs.saved_peak_bytes(alg, model, phi, batches))
    maml = saved["maml"]
    assert maml[0] < maml[1] < maml[2]
    # k-1 inner steps kept: 1 -> 3 -> 7 steps' graphs, so the growth is close to linear in k
    assert (maml[2] - maml[1]) == pytest.approx(2 * (maml[1] - maml[0]), rel=0.05)
    for alg in ("reptile", "fomaml"):
        assert saved[alg][0] > 0 and len(set(saved[alg])) == 1  # one step's graph, whatever k
        assert saved[alg][0] < maml[0]


def test_first_order_steps_leave_no_graph_alive():
    model, phi, batches = costs.sine_problem(3)
    for alg in COMPARED:
        with costs.SavedTensorMeter() as meter:
            d, _, _ = costs._step(alg, model, phi, batches, 1e-2)
        assert meter.live == 0, alg
        assert all(not v.requires_grad for v in d.values())


def test_k_too_small_is_a_clear_error():
    model, phi, batches = costs.sine_problem(1)
    with pytest.raises(ValueError, match="k >= 2"):
        costs.saved_peak_bytes("maml", model, phi, batches)
    with pytest.raises(ValueError, match="algorithm"):
        costs.check_k("sgd", 3)


def test_cost_rows_shape_and_rss_in_a_fresh_process():
    rows = costs.cost_rows(ks=(1, 2), meta_batch_size=1, repeats=1, rss=False)
    assert [(r["algorithm"], r["k"]) for r in rows] == [("reptile", 1), ("maml", 2), ("fomaml", 2), ("reptile", 2)]
    for r in rows:
        assert r["gradient_evaluations"] == r["k"] and r["median_s"] > 0 and r["saved_peak_bytes"] > 0
    ballast = torch.ones(2**26)  # the parent holds 256 MiB: a child must not inherit it as its peak
    try:
        assert 0 < costs.rss_delta_bytes("reptile", 2, meta_batch_size=1) < 2**27
    finally:
        del ballast


@pytest.mark.skipif(not (RESULTS / "cpu.json").exists(), reason="run `python benchmarks/costs.py` first")
def test_committed_results_have_the_expected_shape():
    loaded = costs.load_results(RESULTS)
    cpu = loaded["devices"]["cpu"]
    for key in ("config", "torch", "note", "k_meaning", "rows"):
        assert key in cpu
    pairs = {(r["algorithm"], r["k"]) for r in cpu["rows"]}
    for k in cpu["config"]["ks"]:
        assert ("reptile", k) in pairs
        assert (("maml", k) in pairs) == (k >= 2) == (("fomaml", k) in pairs)
    maml = sorted((r["k"], r["saved_peak_bytes"]) for r in cpu["rows"] if r["algorithm"] == "maml")
    assert [b for _, b in maml] == sorted(b for _, b in maml)
    accuracy = loaded["accuracy"]
    if accuracy is not None:
        assert {r["algorithm"] for r in accuracy["sine"]} == set(COMPARED)
        table = costs.takeaway_table(cpu, accuracy)
        assert [e["algorithm"] for e in table] == list(COMPARED)
        assert "maml" in costs.format_takeaway(table)
    json.dumps(loaded)
