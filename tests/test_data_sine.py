"""The sine-wave tasks (``data.sine``): the Reptile paper's ranges, one epoch over the x grid."""
import torch

from reptile_edu.data import sine
from reptile_edu.models import SineMLP


def test_sine_tasks_follow_the_reptile_convention():
    amp, phase = sine.sample_tasks(5000, torch.Generator().manual_seed(0))
    assert 0.1 <= amp.min() and amp.max() <= 5.0 and 0 <= phase.min() and phase.max() <= 2 * torch.pi
    assert phase.max() > torch.pi  # not MAML's [0, pi]
    batches = sine.epoch_batches(amp[:2], phase[:2], 10, 5, torch.Generator().manual_seed(0))
    xs = torch.cat([x for x, _ in batches], dim=1)[..., 0]
    assert torch.equal(xs.sort(dim=1).values, sine.X_GRID.expand(2, -1))  # one epoch: every grid point once
    assert sum(p.numel() for p in SineMLP().init_params().values()) == 4353
