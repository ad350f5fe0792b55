"""The promotion rule as a pure function."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taximl.promotion import decide, relative_improvement

pytestmark = pytest.mark.unit


def test_first_version_becomes_champion() -> None:
    d = decide(
        challenger_version="1",
        challenger_value=2.0,
        champion_version=None,
        champion_value=None,
        margin=0.05,
    )
    assert d.promote
    assert d.reason == "first version becomes champion"
    assert d.line() == (
        "promote: challenger v1 rmse=2.0000, no champion, margin 5.00%: "
        "first version becomes champion"
    )


def test_better_by_margin_is_promoted() -> None:
    d = decide(
        challenger_version="3",
        challenger_value=0.9,
        champion_version="2",
        champion_value=1.0,
        margin=0.05,
    )
    assert d.promote
    assert d.relative_improvement == pytest.approx(0.1)
    assert d.line() == (
        "promote: challenger v3 rmse=0.9000, champion v2 rmse=1.0000, margin 5.00%: "
        "rmse improved by 10.00% (needed 5.00%)"
    )


@pytest.mark.parametrize(
    ("challenger", "expected_gain", "reason"),
    [
        (0.98, 0.02, "rmse improved by 2.00%, less than the 5.00% needed"),
        (1.2, -0.2, "rmse worse by 20.00%; an improvement of 5.00% is needed"),
    ],
)
def test_better_by_less_than_margin_or_worse_is_not_promoted(
    challenger: float, expected_gain: float, reason: str
) -> None:
    d = decide(
        challenger_version="3",
        challenger_value=challenger,
        champion_version="2",
        champion_value=1.0,
        margin=0.05,
    )
    assert not d.promote
    assert d.relative_improvement == pytest.approx(expected_gain)
    assert d.reason == reason


def test_non_finite_challenger_is_never_promoted() -> None:
    for champion in (None, "1"):
        d = decide(
            challenger_version="2",
            challenger_value=math.nan,
            champion_version=champion,
            champion_value=None if champion is None else 1.0,
            margin=0.0,
        )
        assert not d.promote
        assert d.reason == "challenger rmse is not finite"


def test_champion_with_non_finite_metric_loses() -> None:
    d = decide(
        challenger_version="2",
        challenger_value=5.0,
        champion_version="1",
        champion_value=math.inf,
        margin=0.5,
    )
    assert d.promote


def test_challenger_that_is_champion_is_left_alone() -> None:
    d = decide(
        challenger_version="4",
        challenger_value=1.0,
        champion_version="4",
        champion_value=1.0,
        margin=0.0,
    )
    assert not d.promote
    assert d.reason == "challenger is already champion"


@pytest.mark.parametrize("margin", [-0.1, 1.0, math.nan])
def test_margin_out_of_range_is_refused(margin: float) -> None:
    with pytest.raises(ValueError, match="expected 0 <= margin < 1"):
        decide(
            challenger_version="2",
            challenger_value=1.0,
            champion_version="1",
            champion_value=1.0,
            margin=margin,
        )


def test_perfect_champion_can_only_be_matched() -> None:
    assert relative_improvement(0.0, 0.0) == 0.0
    assert relative_improvement(0.1, 0.0) == -math.inf


errors = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False)


@given(challenger=errors, champion=errors, margin=st.floats(min_value=0.0, max_value=0.99))
def test_promoted_exactly_when_relative_improvement_reaches_margin(
    challenger: float, champion: float, margin: float
) -> None:
    d = decide(
        challenger_version="2",
        challenger_value=challenger,
        champion_version="1",
        champion_value=champion,
        margin=margin,
    )
    assert d.promote == ((champion - challenger) / champion >= margin)
    if d.promote:
        assert challenger <= champion
