"""Drift of scoring data against training data: the population stability index (PSI).

Training stores a reference profile per feature (bin edges and counts) with the model
version, so monitoring compares the scored rows with the data *that version* was trained
on, even after later training runs. Numeric features get decile bins
(`(-inf, e0], (e0, e1], ..., (ek, inf)`), categorical ones a bin per known category plus
`other`; both have a last bin for missing values. Scoring rows are binned in Spark with
the same rule, so the counts agree with numpy's (tested).

PSI = sum((a - e) * ln(a / e)) over bins of the reference (e) and scoring (a) shares,
each share floored at `EPS` so empty bins stay finite. Usual reading: below 0.1
stable, below 0.25 moderate shift, above that drift.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import reduce
from typing import Any, Literal

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

EPS = 1e-4
BINS = 10
MAX_CATEGORIES = 50
STABLE, MODERATE = 0.1, 0.25
PROFILE_VERSION = 1
Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class FeatureProfile:
    """Bins of one column and the reference count in each (the last bin is 'missing')."""

    name: str
    kind: Kind
    counts: tuple[int, ...]
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        """Readable bin names, in the order of `counts`."""
        if self.kind == "categorical":
            return (*self.categories, "other", "missing")
        bounds = ("-inf", *(f"{e:g}" for e in self.edges), "inf")
        return (*(f"({lo}, {hi}]" for lo, hi in itertools.pairwise(bounds)), "missing")

    def count(self, values: Iterable[Any]) -> np.ndarray:
        """Counts of `values` in this profile's bins (numpy; the reference side)."""
        if self.kind == "numeric":
            return numeric_counts(np.asarray(list(values), dtype="float64"), self.edges)
        return categorical_counts(pd.Series(list(values), dtype="object"), self.categories)


def numeric_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts per bin `(e[i-1], e[i]]` plus a last bin for NaN."""
    missing = np.isnan(values)
    index = np.searchsorted(np.asarray(edges, dtype="float64"), values[~missing], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return np.append(counts, int(missing.sum())).astype("int64")


def categorical_counts(values: pd.Series, categories: Sequence[str]) -> np.ndarray:
    """Counts per known category, then 'other', then missing."""
    missing = values.isna()
    present = values[~missing].astype(str)
    known = present.value_counts().reindex(list(categories), fill_value=0).to_numpy()
    other = int((~present.isin(list(categories))).sum())
    return np.concatenate([known, [other, int(missing.sum())]]).astype("int64")


def numeric_profile(name: str, values: Iterable[float], bins: int = BINS) -> FeatureProfile:
    """Quantile bins of the reference values (duplicate edges merged)."""
    array = np.asarray(list(values), dtype="float64")
    finite = array[~np.isnan(array)]
    quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = (
        tuple(float(e) for e in np.unique(np.quantile(finite, quantiles))) if finite.size else ()
    )
    counts = numeric_counts(array, edges)
    return FeatureProfile(name, "numeric", tuple(int(c) for c in counts), edges=edges)


def categorical_profile(
    name: str, values: Iterable[Any], max_categories: int = MAX_CATEGORIES
) -> FeatureProfile:
    """One bin per frequent category (most frequent first, ties by name), the rest 'other'."""
    series = pd.Series(list(values), dtype="object")
    frequency = series.dropna().astype(str).value_counts()
    ranked = sorted(frequency.items(), key=lambda item: (-item[1], item[0]))
    categories = tuple(str(cat) for cat, _ in ranked[:max_categories])
    counts = categorical_counts(series, categories)
    return FeatureProfile(name, "categorical", tuple(int(c) for c in counts), categories=categories)


def psi(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, eps: float = EPS
) -> float:
    """Population stability index of two count (or share) vectors over the same bins."""
    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(
            f"psi needs two count vectors of the same length, got {e.shape} and {a.shape}"
        )
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("psi needs at least one counted value on each side")
    pe = np.maximum(e / e.sum(), eps)
    pa = np.maximum(a / a.sum(), eps)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def level(value: float) -> str:
    """stable / moderate / drift, by the usual PSI thresholds."""
    if not math.isfinite(value):
        return "drift"
    if value < STABLE:
        return "stable"
    return "moderate" if value < MODERATE else "drift"


def reference_profiles(
    features: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    predictions: Iterable[float] | None = None,
) -> list[FeatureProfile]:
    """Profiles of the training features (and of the model's predictions on them)."""
    profiles = [numeric_profile(c, features[c].astype("float64")) for c in numeric]
    profiles += [categorical_profile(c, features[c]) for c in categorical]
    if predictions is not None:
        profiles.append(numeric_profile("prediction", predictions))
    return profiles


def to_json(profiles: Sequence[FeatureProfile]) -> dict[str, Any]:
    return {"version": PROFILE_VERSION, "features": [asdict(p) for p in profiles]}


def from_json(doc: Mapping[str, Any]) -> list[FeatureProfile]:
    if doc.get("version") != PROFILE_VERSION:
        raise ValueError(
            f"reference profile version {doc.get('version')!r} is not {PROFILE_VERSION}"
        )
    return [
        FeatureProfile(
            name=str(f["name"]),
            kind=f["kind"],
            counts=tuple(int(c) for c in f["counts"]),
            edges=tuple(float(e) for e in f.get("edges", ())),
            categories=tuple(str(c) for c in f.get("categories", ())),
        )
        for f in doc["features"]
    ]


def bin_column(profile: FeatureProfile) -> Column:
    """Spark expression giving each row's bin index in `profile` (same rule as numpy)."""
    missing = len(profile.counts) - 1
    if profile.kind == "numeric":
        col = sf.col(profile.name).cast("double")
        index = reduce(
            lambda acc, edge: acc + (col > sf.lit(edge)).cast("int"), profile.edges, sf.lit(0)
        )
        return sf.when(col.isNull() | sf.isnan(col), sf.lit(missing)).otherwise(index)
    col = sf.col(profile.name).cast("string")
    pairs = [item for i, cat in enumerate(profile.categories) for item in (sf.lit(cat), sf.lit(i))]
    lookup = sf.create_map(*pairs)[col] if pairs else sf.lit(None).cast("int")
    other = sf.lit(len(profile.categories))
    return sf.when(col.isNull(), sf.lit(missing)).otherwise(sf.coalesce(lookup, other))


def spark_counts(df: DataFrame, profiles: Sequence[FeatureProfile]) -> dict[str, np.ndarray]:
    """Counts of `df`'s rows in every profile's bins, in one Spark job."""
    cells = [
        sf.struct(sf.lit(p.name).alias("feature"), bin_column(p).cast("int").alias("bin"))
        for p in profiles
    ]
    rows = (
        df.select(sf.explode(sf.array(*cells)).alias("cell"))
        .groupBy("cell.feature", "cell.bin")
        .count()
        .collect()
    )
    counts = {p.name: np.zeros(len(p.counts), dtype="int64") for p in profiles}
    for row in rows:
        counts[row["feature"]][row["bin"]] = row["count"]
    return counts


@dataclass(frozen=True)
class Drift:
    """PSI of one column between the reference and the scoring data."""

    name: str
    psi: float
    level: str
    rows: int


def drift(profiles: Sequence[FeatureProfile], actual: Mapping[str, np.ndarray]) -> list[Drift]:
    """PSI of every profiled column, given the scoring counts per column."""
    out = []
    for p in profiles:
        value = psi(p.counts, actual[p.name])
        out.append(Drift(p.name, value, level(value), int(actual[p.name].sum())))
    return out
