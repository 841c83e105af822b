"""Your own drawings as Omniglot images, and the few-shot demo that adapts a meta-learned network to them.

A drawing is a list of strokes; a stroke is a list of ``[x, y]`` points in any units (the drawing widget sends
canvas pixels, y pointing down). ``render`` turns it into the input our Omniglot loader produces, by the same
route the Omniglot images took: the strokes are drawn in black on a white 105x105 canvas, with Omniglot's pen
width, then resized to 28x28 with nearest-neighbour sampling, exactly as ``data/omniglot.py`` resizes the
originals. Before drawing, the strokes are centred on their bounding box and scaled so that its longer side is
the median of Omniglot's characters, which leaves the padding Omniglot's characters have. The rendering is then
independent of where and how large the character was drawn.

``classify`` adapts an initialisation to labelled drawings exactly as ``evaluation.evaluate`` adapts it to a
task's support set, and predicts non-transductively (each test drawing with the whole support set in the batch).
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from . import evaluation
from .checkpoints import load_shipped, shipped_path
from .config import Config
from .data.omniglot import IMAGE_SIZE
from .models import Params
from .train import build_model

SOURCE_SIZE = 105  # Omniglot's drawings are 105x105 before the loader resizes them
# Measured on Omniglot's 105x105 images: the longer side of a character's bounding box has a median of 67 px, and
# its strokes are about 4.4 px wide by ``stroke_width`` (tests/test_drawing.py compares the 28x28 results).
EXTENT = 67
PEN_WIDTH = 6  # px at 105: our renderings then measure 4.5 px by ``stroke_width`` at 105 px, as Omniglot's do
EXAMPLES = Path(__file__).resolve().parent / "resources" / "example_drawings.json"


def check_strokes(strokes, what: str = "the drawing") -> list[np.ndarray]:
    """The strokes as float arrays [points, 2]; a ValueError in one line for anything else, or for a drawing with
    no ink (no strokes) or no shape (every point in one place: a click, not a character)."""
    if not isinstance(strokes, (list, tuple)):
        raise ValueError(f"{what} must be a list of strokes, each a list of [x, y] points "
                         f"(got {type(strokes).__name__})")
    arrays = []
    for i, stroke in enumerate(strokes):
        try:
            points = np.asarray(stroke, dtype=np.float64)
        except (TypeError, ValueError):
            points = None
        if points is None or points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
            raise ValueError(f"{what}: stroke {i} must be a non-empty list of [x, y] points (got {str(stroke)[:60]})")
        if not np.isfinite(points).all():
            raise ValueError(f"{what}: stroke {i} has a point that is not a finite number")
        arrays.append(points)
    if not arrays:
        raise ValueError(f"{what} is empty: draw a character")
    points = np.concatenate(arrays)
    if np.ptp(points, axis=0).max() == 0:
        raise ValueError(f"{what} is a single dot: draw a character, not a click")
    return arrays


def render(strokes, what: str = "the drawing") -> torch.Tensor:
    """A drawing as our Omniglot loader's image: uint8 [1, 28, 28], ink 0 and background 255."""
    arrays = check_strokes(strokes, what)
    points = np.concatenate(arrays)
    low, high = points.min(axis=0), points.max(axis=0)
    scale = EXTENT / np.ptp(points, axis=0).max()
    centre = (SOURCE_SIZE - 1) / 2
    canvas = Image.new("L", (SOURCE_SIZE, SOURCE_SIZE), 255)
    pen = ImageDraw.Draw(canvas)
    r = PEN_WIDTH / 2
    for stroke in arrays:
        xy = [tuple(p) for p in (stroke - (low + high) / 2) * scale + centre]
        if len(xy) > 1:
            pen.line(xy, fill=0, width=PEN_WIDTH, joint="curve")
        for x, y in (xy[0], xy[-1]) if len(xy) > 1 else xy:  # round ends; a one-point stroke is a dot
            pen.ellipse((x - r, y - r, x + r, y + r), fill=0)
    small = canvas.resize((IMAGE_SIZE, IMAGE_SIZE), Image.NEAREST)
    return torch.from_numpy(np.asarray(small, dtype=np.uint8).copy())[None]


def ink_fraction(images: torch.Tensor) -> torch.Tensor:
    """Per image [..., H, W] (ink below 128), the fraction of pixels that are ink."""
    return (images < 128).double().mean(dim=(-2, -1))


def stroke_width(images: torch.Tensor) -> torch.Tensor:
    """Per image [..., H, W], the mean width of its strokes in pixels: twice the ink area over the ink's boundary
    length (the edges between an ink pixel and a background pixel or the border). A long stroke w pixels wide has
    area about w L and boundary about 2 L."""
    ink = torch.nn.functional.pad((images < 128).double(), (1, 1, 1, 1))  # the border counts as background
    edges = ((ink[..., 1:, :] != ink[..., :-1, :]).sum(dim=(-2, -1)) + (ink[..., :, 1:] != ink[..., :, :-1]).sum(
        dim=(-2, -1)))
    return 2 * ink.sum(dim=(-2, -1)) / edges.clamp(min=1)


def examples() -> list[dict]:
    """The stored example set: ``[{"name", "drawings": [drawing, ...]}, ...]`` per class, where a drawing is a
    list of strokes in canvas pixels. The first drawing of a class is its example support drawing, the others
    are test drawings of the same character."""
    return json.loads(EXAMPLES.read_text())["classes"]


# --- Adapting to drawings ------------------------------------------------------------------------------------

@dataclass
class Learner:
    """An initialisation and how the evaluation adapts it: the network, its weights, the carried inner Adam state
    (None: a fresh one) and the preset's evaluation steps, minibatch and step size."""
    name: str
    model: object
    phi: Params
    inner_state: dict | None
    eval_inner_iters: int
    eval_batch_size: int
    inner_lr: float

    @property
    def ways(self) -> int:
        """How many classes the network's head tells apart."""
        return self.model.num_classes


def shipped_learner(name: str, checkpoint: str) -> Learner:
    """A shipped checkpoint as a ``Learner`` with its preset's evaluation settings."""
    shipped = load_shipped(checkpoint)
    config = Config(**shipped["config"])
    return Learner(name, build_model(config), shipped["params"], shipped["inner_state"], config.eval_inner_iters,
                   config.eval_batch_size, config.inner_lr)


def random_learner(like: Learner, seed: int = 0) -> Learner:
    """The same network freshly initialised (fresh Adam state), adapted with ``like``'s settings."""
    return Learner("random initialisation", like.model, like.model.init_params(torch.Generator().manual_seed(seed)),
                   None, like.eval_inner_iters, like.eval_batch_size, like.inner_lr)


def as_input(images) -> torch.Tensor:
    """Rendered images (uint8 [..., 1, 28, 28] or a list of them) as the network's float input in [0, 1]."""
    x = torch.stack(list(images)) if isinstance(images, (list, tuple)) else images
    return x.float().div(255)


def classify(learner: Learner, support: list[list[torch.Tensor]], query, eval_seed: int = 0) -> torch.Tensor:
    """Probabilities [Q, N] of each of the ``query`` images (rendered, [Q, 1, 28, 28] or a list) over the N classes of
    ``support`` (per class, a list of one or more rendered images), after adapting ``learner`` to the support set
    as ``evaluation.evaluate`` does.

    A head with more outputs than N (the 5-way network told 3 classes apart) gives its unused outputs no
    examples; they are left out of the softmax, so the probabilities are over the classes drawn.
    """
    n = len(support)
    if n < 2:
        raise ValueError(f"few-shot learning needs at least 2 classes (got {n})")
    if n > learner.ways:
        raise ValueError(f"the {learner.name} network tells at most {learner.ways} classes apart (got {n}); "
                         f"use a checkpoint with a larger head")
    if any(len(drawings) == 0 for drawings in support):
        empty = [str(c + 1) for c, drawings in enumerate(support) if not drawings]
        raise ValueError(f"class {', '.join(empty)} has no drawing: every class needs at least one")
    sx = as_input([image for drawings in support for image in drawings])[None]
    sy = torch.tensor([c for c, drawings in enumerate(support) for _ in drawings])[None]
    qx = as_input(query)[None]
    params, _ = evaluation.adapt(learner.model, learner.phi, learner.inner_state, sx, sy,
                                 eval_inner_iters=learner.eval_inner_iters, eval_batch_size=learner.eval_batch_size,
                                 inner_lr=learner.inner_lr, eval_seed=eval_seed)
    scores = evaluation.logits(learner.model, params, sx, qx)["non-transductive"][0]
    return scores[:, :n].softmax(dim=-1)


def classify_all(learners: list[Learner], support: list[list[torch.Tensor]], query, eval_seed: int = 0) -> dict:
    """``{learner.name: classify(...)}`` for every learner. On a CPU they run in parallel, one torch thread each (as
    ``evaluation.evaluate`` runs its chunks), so with a core per learner all take about as long as one; each
    learner's arithmetic is single-threaded whatever the number of cores, so the results do not depend on it."""
    threads = torch.get_num_threads()
    workers = min(len(learners), threads)
    torch.set_num_threads(1 if workers > 1 else threads)
    try:
        with ThreadPoolExecutor(workers) as pool:
            futures = {learner.name: pool.submit(classify, learner, support, query, eval_seed) for learner in learners}
            return {name: future.result() for name, future in futures.items()}
    finally:
        torch.set_num_threads(threads)


def example_accuracy(learner: Learner, num_classes: int | None = None) -> dict:
    """Over the example set's first ``num_classes`` classes (default all, at most the learner's head), adapted on
    each class's first drawing: ``{"accuracy": percent, "queries": count, "probabilities": [Q, N], "labels": [Q]}``
    for every other drawing as a test drawing."""
    classes = examples()[:num_classes or learner.ways]
    support = [[render(c["drawings"][0])] for c in classes]
    queries = [(render(d), label) for label, c in enumerate(classes) for d in c["drawings"][1:]]
    probs = classify(learner, support, [q for q, _ in queries])
    labels = torch.tensor([label for _, label in queries])
    return {"accuracy": 100 * (probs.argmax(dim=1) == labels).double().mean().item(), "queries": len(queries),
            "probabilities": probs, "labels": labels}


# The demo's initialisations per shipped meta-trained checkpoint: the joint-training checkpoint of the same network.
JOINT = {"omniglot-5way-paper": "omniglot-5way-joint", "omniglot-20way-paper": "omniglot-20way-joint"}


def demo_learners(checkpoint: str = "omniglot-5way-paper") -> list[Learner]:
    """Reptile's shipped initialisation, joint training's for the same network (where shipped) and a random one:
    each shipped one with its own preset's evaluation settings and carried Adam state, the random one with the
    Reptile checkpoint's settings and a fresh state."""
    reptile = shipped_learner("Reptile", checkpoint)
    joint = JOINT.get(checkpoint)
    joint = [shipped_learner("joint training", joint)] if joint and shipped_path(joint).is_file() else []
    return [reptile, *joint, random_learner(reptile)]
