"""reptile_edu: the runnable companion to "On First-Order Meta-Learning Algorithms" (Nichol, Achiam, Schulman 2018)."""
from .config import Config, budget, smoke_mode
from .train import History, meta_train, set_seed

__version__ = "0.1.0"
__all__ = ["Config", "History", "budget", "meta_train", "set_seed", "smoke_mode"]
