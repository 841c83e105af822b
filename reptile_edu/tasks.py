"""Few-shot episodes and inner-loop minibatches as index arithmetic on one uint8 tensor.

Every function here reproduces, per task, the sampling of the official supervised-reptile code
(``reptile.py``: ``_sample_mini_dataset``, ``_mini_batches``, ``_split_train_test``, ``evaluate``), but draws
all T tasks of a meta-batch at once with a seeded ``torch.Generator``: a uniformly random ordered choice of
N classes is the top-N of T x C uniform numbers, a random permutation is an ``argsort`` of uniforms, and the
images are gathered by flat index. No DataLoader and no per-image Python, so a GPU is never starved.

Pixel convention: ``ImageDataset.images`` is uint8 and a batch is ``images / 255`` as float32, which is
exactly the official input (Omniglot {0, 1} with background 1 and ink 0; Mini-ImageNet RGB in [0, 1]).
Floats are made only for the sampled batch, never for a whole split.

Randomness: numbers are drawn on the generator's device and the indices moved to the data's device, so a
CPU generator gives the same episodes whatever device holds the images (a CUDA generator is faster on GPU).
The streams are not Python ``random``'s, so the exact tasks differ from the official run; the distribution
of every task and batch is the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class ImageDataset:
    """One split as uint8 pixels ``images [num_classes, per_class, C, H, W]`` (0..255; divide by 255 for the
    official float input), ``class_names`` (one per class, e.g. ``"Greek/character03@90"``), a ``name`` such as
    ``"omniglot/train"``, and the ``rotations`` (degrees, counter-clockwise) materialised as separate classes:
    class ``len(rotations) * c + r`` is base class ``c`` rotated by ``rotations[r]``, the official
    ``augment_dataset`` order. Materialising them (4,800 Omniglot classes, 75 MiB) keeps sampling generic."""

    images: torch.Tensor
    class_names: list[str]
    name: str
    rotations: tuple[int, ...] = (0,)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 5:
            raise ValueError(f"images must be uint8 [classes, per_class, C, H, W] (got {self.images.dtype} "
                             f"{tuple(self.images.shape)})")
        if len(self.class_names) != self.images.shape[0]:
            raise ValueError(f"{len(self.class_names)} class_names for {self.images.shape[0]} classes")

    @property
    def num_classes(self) -> int:
        return self.images.shape[0]

    @property
    def per_class(self) -> int:
        return self.images.shape[1]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device) -> "ImageDataset":
        """The same split on ``device`` (one uint8 copy; sampling then happens there)."""
        return ImageDataset(self.images.to(device), self.class_names, self.name, self.rotations)

    def __repr__(self) -> str:
        c, p, *chw = self.images.shape
        return (f"ImageDataset({self.name!r}: {c} classes x {p} images of {'x'.join(map(str, chw))} uint8, "
                f"{self.images.numel() / 2**20:.1f} MiB on {self.device})")


def _uniform(shape, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=device)


def _check(name: str, value: int, low: int, high: int, fix: str) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is outside {low}..{high}: {fix}")


def sample_mini_datasets(dataset: ImageDataset, num_classes: int, num_shots: int, num_tasks: int,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Official ``_sample_mini_dataset`` for ``num_tasks`` tasks at once: flat image indices ``[T, N, K]`` on the
    generator's device (``pixels`` moves them to the data).

    Per task: N distinct classes in a uniformly random order (that order is the label 0..N-1) and K distinct
    images of each. A flat index ``c * per_class + i`` addresses ``dataset.images.flatten(0, 1)``.
    """
    _check("num_classes (N-way)", num_classes, 1, dataset.num_classes,
           f"{dataset.name} has only {dataset.num_classes} classes; ask for fewer ways")
    _check("num_shots (images per class)", num_shots, 1, dataset.per_class,
           f"{dataset.name} has {dataset.per_class} images per class; shots (+ query or tail) must fit")
    _check("num_tasks", num_tasks, 1, 2**31, "ask for at least one task")
    classes = _uniform((num_tasks, dataset.num_classes), generator).topk(num_classes, dim=1).indices
    images = _uniform((num_tasks, num_classes, dataset.per_class), generator).topk(num_shots, dim=2).indices
    return classes[:, :, None] * dataset.per_class + images


def stream_indices(num_tasks: int, num_samples: int, batch_size: int, num_batches: int,
                   generator: torch.Generator | None = None, replacement: bool = False) -> torch.Tensor:
    """Positions ``[T, num_batches, batch_size]`` into each task's list of ``num_samples`` examples.

    Cycling (official ``_mini_batches``): the stream is a concatenation of fresh permutations (one per epoch)
    cut into consecutive batches, so a batch may straddle an epoch boundary. Replacement: each batch is an
    independent ``random.sample`` (distinct within a batch, repeats across batches).
    """
    _check("batch_size", batch_size, 1, num_samples if replacement else 2**31,
           f"a batch drawn without repeats cannot exceed the {num_samples} examples of a task")
    _check("num_batches", num_batches, 1, 2**31, "ask for at least one minibatch")
    if replacement:
        return _uniform((num_tasks, num_batches, num_samples), generator).topk(batch_size, dim=2).indices
    epochs = -(-batch_size * num_batches // num_samples)
    stream = _uniform((num_tasks, epochs, num_samples), generator).argsort(dim=2).flatten(1)
    return stream[:, : batch_size * num_batches].reshape(num_tasks, num_batches, batch_size)


def pixels(dataset: ImageDataset, flat: torch.Tensor) -> torch.Tensor:
    """Gather uint8 images by flat index ``[...]`` and make floats in [0, 1] for just these: ``[..., C, H, W]``."""
    images = dataset.images.flatten(0, 1)
    # index_select: faster than advanced indexing
    x = images.flatten(1).index_select(0, flat.reshape(-1).to(images.device))
    return x.float().div_(255).reshape(*flat.shape, *images.shape[1:])


def _take(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """values [T, M], positions [T, ...] -> values per task at those positions, [T, ...]."""
    return values.gather(1, positions.reshape(positions.shape[0], -1).to(values.device)).reshape(positions.shape)


def training_indices(dataset: ImageDataset, num_classes: int, train_shots: int, inner_batch_size: int,
                     inner_iters: int, meta_batch_size: int, generator: torch.Generator | None = None,
                     replacement: bool = False, foml_tail: int | None = None) -> list[Batch]:
    """``training_batches`` as flat image indices: per inner step ``(flat [T, B], y [T, B])``, on the generator's
    device. The CUDA-graph trainer (``fast/graphs.py``) draws these on the CPU and gathers the pixels inside the graph.
    """
    T, N = meta_batch_size, num_classes
    tail = foml_tail or 0
    if foml_tail is not None:
        _check("foml_tail", foml_tail, 1, train_shots - 1, "the tail needs >= 1 shot and must leave >= 1 for training")
        _check("inner_iters", inner_iters, 2, 2**31, "a separate tail needs >= 1 cycling step before it")
    flat = sample_mini_datasets(dataset, N, train_shots, T, generator)  # [T, N, K]
    labels = torch.arange(N, device=flat.device).expand(T, N)[:, :, None].expand(T, N, train_shots)
    body_flat, body_y = flat[:, :, tail:].reshape(T, -1), labels[:, :, tail:].reshape(T, -1)
    positions = stream_indices(T, body_flat.shape[1], inner_batch_size, inner_iters - (tail > 0), generator,
                               replacement)
    steps_flat, steps_y = _take(body_flat, positions), _take(body_y, positions)
    steps = [(steps_flat[:, i], steps_y[:, i]) for i in range(positions.shape[1])]
    if tail:
        steps.append((flat[:, :, :tail].transpose(1, 2).reshape(T, -1),
                      labels[:, :, :tail].transpose(1, 2).reshape(T, -1)))
    return steps


def join_meta_batches(meta_batches: list[list[Batch]]) -> list[Batch]:
    """Several runs' meta-batches (each k minibatches (x, y) with leading T) as one, the runs' tasks one run after
    another on the task dimension; a single meta-batch is returned as it is."""
    if len(meta_batches) == 1:
        return meta_batches[0]
    return [(torch.cat([m[j][0] for m in meta_batches]), torch.cat([m[j][1] for m in meta_batches]))
            for j in range(len(meta_batches[0]))]


def training_batches(dataset: ImageDataset, num_classes: int, train_shots: int, inner_batch_size: int,
                     inner_iters: int, meta_batch_size: int, generator: torch.Generator | None = None,
                     replacement: bool = False, foml_tail: int | None = None) -> list[Batch]:
    """The ``inner_iters`` minibatches of ``meta_batch_size`` independent training tasks (official ``train_step``).

    Each item is ``(x float32 [T, B, C, H, W] in [0, 1], y int64 [T, B])``. With ``foml_tail=S`` (official
    ``--foml-tail``): ``_split_train_test`` reserves S images of every class; the first ``inner_iters - 1``
    batches cycle over the rest and the last batch is the whole tail (N*S examples, ordered shot-major as the
    official list), which never overlaps the earlier batches.
    """
    steps = training_indices(dataset, num_classes, train_shots, inner_batch_size, inner_iters, meta_batch_size,
                             generator, replacement, foml_tail)
    return [(pixels(dataset, flat), y.to(dataset.device)) for flat, y in steps]


def eval_episodes(dataset: ImageDataset, num_classes: int, num_shots: int, num_tasks: int,
                  generator: torch.Generator | None = None):
    """Official ``evaluate()`` tasks: N classes x (K + 1) images, one per class held out as the query.

    Returns ``support_x [T, N*K, C, H, W]``, ``support_y [T, N*K]`` (class-major, as the official list after
    the query images are removed), ``query_x [T, N, C, H, W]``, ``query_y [T, N]`` (labels 0..N-1 in order).
    """
    if num_shots + 1 > dataset.per_class:
        raise ValueError(f"num_shots={num_shots} plus 1 query image per class exceeds the {dataset.per_class} "
                         f"images per class of {dataset.name}; use num_shots <= {dataset.per_class - 1}")
    T, N, K = num_tasks, num_classes, num_shots
    flat = sample_mini_datasets(dataset, N, K + 1, T, generator)
    labels = torch.arange(N, device=dataset.device).expand(T, N)
    support_y = labels[:, :, None].expand(T, N, K).reshape(T, N * K)
    return pixels(dataset, flat[:, :, 1:].reshape(T, N * K)), support_y, pixels(dataset, flat[:, :, 0]), labels.clone()


def support_batches(support_x: torch.Tensor, support_y: torch.Tensor, batch_size: int, num_batches: int,
                    generator: torch.Generator | None = None, replacement: bool = False) -> list[Batch]:
    """The official minibatch stream over each task's support set, for the evaluation fine-tuning steps."""
    T, M = support_y.shape
    positions = stream_indices(T, M, batch_size, num_batches, generator, replacement).to(support_y.device)
    rows = torch.arange(T, device=support_y.device)[:, None, None]
    x, y = support_x[rows, positions], support_y[rows, positions]
    return [(x[:, i], y[:, i]) for i in range(num_batches)]
