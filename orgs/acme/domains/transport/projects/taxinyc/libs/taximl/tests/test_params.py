"""Job parameters: parsed values and one-line errors."""

from __future__ import annotations

import pytest

from taximl.errors import ParameterError
from taximl.params import TrainParams, promotion_margin

pytestmark = pytest.mark.unit

WIDGETS = {
    "learning_rate": "0.2",
    "max_iter": "50",
    "max_leaf_nodes": "15",
    "heldout_percent": "25",
    "seed": "3",
    "promotion_margin": "0.02",
}


def test_parameters_from_widgets() -> None:
    params = TrainParams.from_widgets(WIDGETS.__getitem__)
    assert params == TrainParams(
        learning_rate=0.2, max_iter=50, max_leaf_nodes=15, heldout_percent=25, seed=3
    )
    assert promotion_margin(WIDGETS.__getitem__) == 0.02


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "learning_rate",
            "fast",
            "job parameter learning_rate is 'fast'; expected a number in [0.0001, 1.0]",
        ),
        ("max_iter", "2.5", "job parameter max_iter is '2.5'; expected an integer in [1, 10000]"),
        (
            "heldout_percent",
            "0",
            "job parameter heldout_percent is '0'; expected an integer in [1, 90]",
        ),
        (
            "promotion_margin",
            "1",
            "job parameter promotion_margin is '1'; expected a number in [0.0, 0.99]",
        ),
        (
            "promotion_margin",
            "nan",
            "job parameter promotion_margin is 'nan'; expected a number in [0.0, 0.99]",
        ),
    ],
)
def test_bad_parameter_is_one_line_naming_it(key: str, value: str, message: str) -> None:
    widgets = WIDGETS | {key: value}
    with pytest.raises(ParameterError) as info:
        TrainParams.from_widgets(widgets.__getitem__)
        promotion_margin(widgets.__getitem__)
    assert str(info.value) == message
