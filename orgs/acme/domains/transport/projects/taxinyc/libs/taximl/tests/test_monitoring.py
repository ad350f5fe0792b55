"""Population stability index and the reference profiles it compares."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from taximl import monitoring
from taximl.monitoring import (
    categorical_profile,
    drift,
    from_json,
    level,
    numeric_profile,
    psi,
    reference_profiles,
    spark_counts,
    to_json,
)


@pytest.mark.unit
def test_psi_of_identical_distributions_is_zero() -> None:
    assert psi([10, 20, 30, 0], [1, 2, 3, 0]) == 0.0


@pytest.mark.unit
def test_psi_of_known_shares() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert psi([50, 50], [25, 75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    # symmetric in its two sides
    assert psi([25, 75], [50, 50]) == pytest.approx(psi([50, 50], [25, 75]))


@pytest.mark.unit
def test_psi_floors_empty_bins() -> None:
    expected = (0.5 - 1e-4) * math.log(0.5 / 1e-4) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert psi([1, 1], [0, 10]) == pytest.approx(expected)


@pytest.mark.unit
def test_psi_refuses_mismatched_or_empty_counts() -> None:
    with pytest.raises(ValueError, match="same length"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least one counted value"):
        psi([1, 2], [0, 0])


@pytest.mark.unit
def test_psi_of_normal_samples_detects_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = numeric_profile("x", rng.normal(0.0, 1.0, 20_000))
    same = reference.count(rng.normal(0.0, 1.0, 20_000))
    shifted = reference.count(rng.normal(1.0, 1.0, 20_000))
    assert psi(reference.counts, same) < 0.01
    assert level(psi(reference.counts, same)) == "stable"
    # a one standard deviation shift: PSI of deciles is about 1
    assert 0.8 < psi(reference.counts, shifted) < 1.3
    assert level(psi(reference.counts, shifted)) == "drift"


@pytest.mark.unit
def test_numeric_profile_bins_and_missing() -> None:
    values = [1.0, 2.0, 3.0, 4.0, float("nan"), 10.0]
    profile = numeric_profile("x", values, bins=2)
    assert profile.edges == (3.0,)
    # (-inf, 3], (3, inf], missing
    assert profile.counts == (3, 2, 1)
    assert profile.labels == ("(-inf, 3]", "(3, inf]", "missing")
    assert list(profile.count([3.0, 3.0001, -np.inf, np.inf, float("nan")])) == [2, 2, 1]


@pytest.mark.unit
def test_categorical_profile_other_and_missing() -> None:
    profile = categorical_profile("b", ["Queens", "Bronx", "Queens", None, "EWR"], max_categories=2)
    assert profile.categories == ("Queens", "Bronx")
    assert profile.counts == (2, 1, 1, 1)
    assert profile.labels == ("Queens", "Bronx", "other", "missing")
    assert list(profile.count(["Manhattan", "Queens", None, None])) == [1, 0, 1, 2]


@pytest.mark.unit
def test_level_thresholds() -> None:
    assert [level(v) for v in (0.0, 0.099, 0.1, 0.249, 0.25, math.inf)] == [
        "stable",
        "stable",
        "moderate",
        "moderate",
        "drift",
        "drift",
    ]


@pytest.mark.unit
def test_profiles_round_trip_through_json(features: pd.DataFrame) -> None:
    profiles = reference_profiles(
        features, ["trip_distance", "pickup_hour"], ["pickup_borough"], predictions=[1.0, 2.0]
    )
    assert [p.name for p in profiles] == [
        "trip_distance",
        "pickup_hour",
        "pickup_borough",
        "prediction",
    ]
    assert from_json(to_json(profiles)) == profiles
    with pytest.raises(ValueError, match="reference profile version 99"):
        from_json({"version": 99, "features": []})


@pytest.mark.spark
def test_spark_counts_agree_with_numpy(spark, features: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    reference = features.iloc[:200]
    scoring = features.iloc[200:].copy()
    scoring.loc[scoring.index[:7], "trip_distance"] = np.nan
    scoring.loc[scoring.index[:5], "pickup_borough"] = None
    scoring.loc[scoring.index[5:9], "pickup_borough"] = "Atlantis"
    profiles = reference_profiles(
        reference, ["trip_distance", "pickup_hour"], ["pickup_borough", "payment_type"]
    )
    df = spark.createDataFrame(scoring)
    counts = spark_counts(df, profiles)
    for p in profiles:
        assert list(counts[p.name]) == list(p.count(scoring[p.name])), p.name
    assert counts["trip_distance"][-1] == 7
    assert counts["pickup_borough"][-2:].tolist() == [4, 5]
    results = {d.name: d for d in drift(profiles, counts)}
    assert results["pickup_hour"].psi == pytest.approx(
        psi(profiles[1].counts, counts["pickup_hour"])
    )
    assert results["pickup_hour"].rows == len(scoring)
    assert monitoring.level(results["pickup_hour"].psi) == results["pickup_hour"].level
