"""Drawings as Omniglot images (``drawing.render``) and the adaptation to them (``drawing.classify``): rendered like
the loader's images, independent of where and how large the character was drawn, adapted exactly as the
evaluation adapts a task."""
import warnings

import numpy as np
import pytest
import torch

from reptile_edu import drawing, evaluation
from reptile_edu.models import OmniglotCNN

EXAMPLES = drawing.examples()
DRAWINGS = [d for c in EXAMPLES for d in c["drawings"]]


def moved(strokes, scale, shift):
    return [(np.asarray(s, dtype=float) * scale + shift).tolist() for s in strokes]


def test_a_rendering_is_the_loaders_image_format():
    image = drawing.render(DRAWINGS[0])
    assert image.dtype == torch.uint8 and image.shape == (1, 28, 28)
    assert set(image.unique().tolist()) == {0, 255} and (image == 255).float().mean() > 0.5  # ink 0 on white


@pytest.mark.parametrize("scale, shift", [(3.7, (40, -12)), (0.31, (-7.5, 100)), (1, (0.5, 0.25)), (25, (1e3, 1e3))])
def test_where_and_how_large_a_character_is_drawn_does_not_change_its_rendering(scale, shift):
    for strokes in DRAWINGS:
        a, b = drawing.render(strokes), drawing.render(moved(strokes, scale, shift))
        assert (a != b).sum() <= 3  # of 784 pixels: rounding can move a pixel where a stroke edge falls on one


def test_the_character_fills_the_canvas_as_omniglot_characters_do():
    for strokes in DRAWINGS:
        ink = (drawing.render(strokes)[0] < 128).numpy()
        rows, cols = np.where(ink.any(1))[0], np.where(ink.any(0))[0]
        extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
        assert 17 <= extent <= 20  # the longer side: Omniglot's median is 18 of 28 pixels
        assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1.5 and abs((cols[0] + cols[-1]) / 2 - 13.5) <= 1.5


@pytest.fixture(scope="module")
def omniglot_test_images():
    """Every image of the real Omniglot test split where the data root has it, else of the generated stand-in."""
    from reptile_edu.data.omniglot import load_omniglot
    from reptile_edu.data.standins import find_data_root, write_tiny_omniglot
    import tempfile

    root = find_data_root("omniglot")
    if root is not None:
        return load_omniglot(root, "test").images[:, :, 0].flatten(0, 1), True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in is not 1,623 characters, as expected
        standin = load_omniglot(write_tiny_omniglot(tempfile.mkdtemp()), "test", benchmark="background-evaluation")
    return standin.images[:, :, 0].flatten(0, 1), False


def _range(values):
    return np.percentile(values.numpy(), [1, 99])


def test_stroke_width_of_renderings_is_omniglots(omniglot_test_images):
    images, real = omniglot_test_images
    reference = drawing.stroke_width(images)
    ours = drawing.stroke_width(torch.stack([drawing.render(d)[0] for d in DRAWINGS]))
    low, high = _range(reference)
    assert low <= ours.min() and ours.max() <= high, (ours.min(), ours.max(), low, high, real)
    assert abs(ours.median() - reference.median()) <= 0.15 * reference.median(), (ours.median(), reference.median())


def test_ink_fraction_of_renderings_is_omniglots(omniglot_test_images):
    images, real = omniglot_test_images
    if not real:
        pytest.skip("needs the real Omniglot in the data root: the stand-in's characters are three short bars, with "
                    "far less ink than a character")
    low, high = _range(drawing.ink_fraction(images))
    ours = drawing.ink_fraction(torch.stack([drawing.render(d)[0] for d in DRAWINGS]))
    assert low <= ours.min() and ours.max() <= high, (ours.min(), ours.max(), low, high)


def test_stroke_width_of_a_bar_is_its_width():
    image = torch.full((28, 28), 255, dtype=torch.uint8)
    image[5:7, 2:26] = 0  # 2 x 24 pixels: area 48, boundary 2 * 24 + 2 * 2
    assert drawing.stroke_width(image) == pytest.approx(2 * 48 / 52)
    assert drawing.ink_fraction(image) == pytest.approx(48 / 784)


@pytest.mark.parametrize("strokes, message", [
    ([], "is empty: draw a character"),
    ([[[10, 10]], [[10, 10], [10, 10]]], "single dot"),
    ([[1, 2, 3]], "stroke 0 must be a non-empty list of [x, y] points"),
    ([[[1, 2]], []], "stroke 1 must be a non-empty list"),
    ([[[1, 2, 3], [4, 5, 6]]], "stroke 0 must be"),
    ([[["a", "b"]]], "stroke 0 must be"),
    ([[[0, 0], [float("nan"), 1]]], "not a finite number"),
    ({"x": 1}, "must be a list of strokes"),
    ("strokes", "must be a list of strokes"),
])
def test_a_drawing_that_cannot_be_rendered_says_why_in_one_line(strokes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        drawing.render(strokes, "class 2's box")
    assert "\n" not in str(info.value) and "class 2's box" in str(info.value)


def test_a_single_stroke_character_and_a_stroke_of_one_point_render():
    assert (drawing.render([[[0, 0], [30, 40], [60, 0]]]) == 0).any()  # a 'v', drawn in one stroke
    with_dot = drawing.render([[[0, 0], [0, 60]], [[0, -20]]])  # an 'i': its dot is a one-point stroke
    rows = (with_dot[0] == 0).any(dim=1).tolist()
    first = rows.index(True)
    assert rows[first:first + 4] != [True] * 4 and sum(rows) > 10  # a dot, a gap, then the bar


def _learner(ways=5, seed=0, state=True):
    model = OmniglotCNN(ways)
    phi = model.init_params(torch.Generator().manual_seed(seed))
    inner_state = None
    if state:  # a carried Adam state, as the shipped checkpoints have
        gen = torch.Generator().manual_seed(seed + 1)
        inner_state = {"v": {k: torch.rand(1, *v.shape, generator=gen) * 1e-4 for k, v in phi.items()},
                       "t": torch.tensor([500.0], dtype=torch.float64)}
    return drawing.Learner("test", model, phi, inner_state, eval_inner_iters=4, eval_batch_size=5, inner_lr=1e-3)


def test_classify_is_the_evaluations_adaptation_and_non_transductive_prediction(tiny_omniglot):
    learner = _learner()
    episode = evaluation.sample_episode(tiny_omniglot(classes=12, per_class=8), num_classes=5, num_shots=2, eval_seed=3)
    sx, sy, qx, qy = episode
    expected = evaluation.adapt_episode(learner.model, learner.phi, learner.inner_state, episode, eval_inner_iters=4,
                                        eval_batch_size=5, inner_lr=1e-3)["probs_after"]
    to_uint8 = lambda x: (x * 255).round().to(torch.uint8)  # noqa: E731 (the demo's inputs are rendered images)
    support = [[to_uint8(sx[0, i]) for i in range(10) if sy[0, i] == c] for c in range(5)]
    got = drawing.classify(learner, support, to_uint8(qx[0]))
    assert torch.equal(got, expected)


def test_fewer_classes_than_the_head_gives_probabilities_over_the_classes_drawn():
    learner = _learner()
    support = [[drawing.render(EXAMPLES[c]["drawings"][0])] for c in range(3)]
    probs = drawing.classify(learner, support, [drawing.render(EXAMPLES[c]["drawings"][1]) for c in range(3)])
    assert probs.shape == (3, 3) and torch.allclose(probs.sum(1), torch.ones(3))


def test_classify_refuses_what_the_network_cannot_answer():
    learner = _learner(ways=5)
    image = drawing.render(DRAWINGS[0])
    with pytest.raises(ValueError, match="at most 5 classes"):
        drawing.classify(learner, [[image]] * 6, [image])
    with pytest.raises(ValueError, match="class 2 has no drawing"):
        drawing.classify(learner, [[image], []], [image])
    with pytest.raises(ValueError, match="at least 2 classes"):
        drawing.classify(learner, [[image]], [image])


def test_classify_all_gives_each_learner_what_classify_gives_it_alone():
    learners = [_learner(seed=s) for s in range(3)]
    for i, learner in enumerate(learners):
        learner.name = f"learner {i}"
    support = [[drawing.render(EXAMPLES[c]["drawings"][0])] for c in range(5)]
    query = [drawing.render(EXAMPLES[1]["drawings"][2])]
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        together = drawing.classify_all(learners, support, query)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    assert list(together) == ["learner 0", "learner 1", "learner 2"]
    for learner in learners:
        assert torch.equal(together[learner.name], drawing.classify(learner, support, query))


def test_the_example_set_is_small_and_has_test_drawings_of_every_class():
    assert drawing.EXAMPLES.stat().st_size < 16_000
    assert len(EXAMPLES) == 5 and all(len(c["drawings"]) >= 3 for c in EXAMPLES)
    for strokes in DRAWINGS:
        drawing.check_strokes(strokes)


def test_reptile_tells_the_example_characters_apart_better_than_joint_training_and_a_random_start():
    learners = {learner.name: learner for learner in drawing.demo_learners("omniglot-5way-paper")}
    assert list(learners) == ["Reptile", "joint training", "random initialisation"]
    accuracy = {name: drawing.example_accuracy(learner)["accuracy"] for name, learner in learners.items()}
    assert accuracy["Reptile"] > max(accuracy["joint training"], accuracy["random initialisation"]), accuracy
