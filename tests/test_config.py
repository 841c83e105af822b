"""``Config``: every bad field is refused by name, and the meta-step schedule."""
import pytest

from reptile_edu import Config


@pytest.mark.parametrize("field, value", [("inner_lr", 0.0), ("inner_lr", -1.0), ("meta_step_size", 0.0),
                                          ("num_shots", 0), ("inner_iters", 0), ("inner_batch_size", 0),
                                          ("meta_batch_size", 0), ("algorithm", "sgd")])
def test_bad_config_names_the_parameter(field, value):
    with pytest.raises(ValueError, match=field):
        Config(**{field: value})


def test_fomaml_needs_two_inner_steps():
    with pytest.raises(ValueError, match="inner_iters"):
        Config(algorithm="fomaml", inner_iters=1)


def test_meta_step_anneals_linearly_to_the_final_value():
    c = Config(meta_iters=100, meta_step_size=1.0, meta_step_size_final=0.0)
    assert [c.meta_step_at(i) for i in (0, 50, 99)] == pytest.approx([1.0, 0.5, 0.01])
