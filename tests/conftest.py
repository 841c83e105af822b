"""Shared test settings."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors on a 2-core machine (and two xdist workers in CI): extra OpenMP threads only spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
