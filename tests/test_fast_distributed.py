"""Two CPU processes on loopback (gloo) train exactly what one process trains on the same tasks
(``fast.distributed``: the meta-batch sharded over ranks)."""
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from reptile_edu import train


def _params(config):
    init = train.build_model(config).init_params(torch.Generator().manual_seed(0))
    return {k: v.double() for k, v in init.items()}  # float64: only the order of additions may differ


def _worker(rank, port, out, config, dataset):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        history = train.meta_train(config, params=_params(config), dataset=dataset)
        if rank == 0:
            torch.save({"phi": history.params, "state": history.inner_state, "losses": history.losses}, out)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_the_single_process_vectorised_run(tmp_path, tiny_config, tiny_omniglot):
    config, data = tiny_config(meta_batch_size=4, meta_iters=3), tiny_omniglot()
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(_free_port(), str(out), config, data), nprocs=2, join=True)
    two = torch.load(out, weights_only=True)
    one = train.meta_train(config, params=_params(config), dataset=data)
    for k in one.params:
        torch.testing.assert_close(two["phi"][k], one.params[k], rtol=0, atol=1e-6)
        torch.testing.assert_close(two["state"]["v"][k], one.inner_state["v"][k], rtol=1e-6, atol=1e-12)
    assert torch.equal(two["state"]["t"], one.inner_state["t"])
    assert max(abs(a - b) for a, b in zip(two["losses"], one.losses)) < 1e-9
