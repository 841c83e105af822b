"""The performance machinery, kept apart from the teaching core: ``graphs`` (the vectorised meta-iteration as
one sync-free step, captured as a CUDA graph on a GPU) and ``distributed`` (a meta-batch's tasks sharded over
torchrun processes). ``train.choose_step`` picks them; both run ``meta.meta_step``, so the algorithm has one
implementation, and tests check each against the plain ``train.Step``.
"""
from . import distributed, graphs

__all__ = ["distributed", "graphs"]
