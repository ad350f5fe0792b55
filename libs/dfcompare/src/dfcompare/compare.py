"""Compare two Spark DataFrames and explain the difference in one readable message.

Tests and reconciliation checks both need more than "not equal": which columns are
missing, how many rows are only on one side, and which values changed for which key.
Rows are compared as multisets (what `exceptAll` does), so duplicates count, like a
ledger: both sides are counted per distinct row in one grouping, which also gives the
totals, so two equal frames cost a single Spark job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as sf
from pyspark.sql.types import (
    ArrayType,
    DataType,
    MapType,
    NumericType,
    StructType,
    VariantType,
)

__all__ = [
    "ChangedRow",
    "Comparison",
    "DataFrameDiffError",
    "DiffSummary",
    "SampleRow",
    "SchemaDiff",
    "assert_same",
    "compare",
    "schema_diff",
]

DIFF_COLUMNS = "columns"
"""Column of `Comparison.changed` listing the value columns that differ."""


# working columns; names no user column has
_COUNT = "__dfcompare_count__"
_NL = "__dfcompare_left__"
_NR = "__dfcompare_right__"
_KIND = "__dfcompare_kind__"


class DataFrameDiffError(AssertionError):
    """Raised by `assert_same`; an AssertionError so pytest shows the message as is."""

    def __init__(self, summary: DiffSummary) -> None:
        self.summary = summary
        super().__init__(str(summary))


@dataclass(frozen=True)
class SchemaDiff:
    """Columns only on one side, and columns whose type (or nullability) differs."""

    only_left: tuple[tuple[str, str], ...] = ()
    only_right: tuple[tuple[str, str], ...] = ()
    type_changes: tuple[tuple[str, str, str], ...] = ()
    nullable_changes: tuple[tuple[str, bool, bool], ...] = ()
    order_differs: bool = False

    @property
    def same(self) -> bool:
        return not (
            self.only_left
            or self.only_right
            or self.type_changes
            or self.nullable_changes
            or self.order_differs
        )

    def lines(self) -> list[str]:
        out = [f"column only in left: {n} ({t})" for n, t in self.only_left]
        out += [f"column only in right: {n} ({t})" for n, t in self.only_right]
        out += [f"type of {n}: {lt} (left) != {rt} (right)" for n, lt, rt in self.type_changes]
        out += [
            f"nullable of {n}: {ln} (left) != {rn} (right)" for n, ln, rn in self.nullable_changes
        ]
        if self.order_differs:
            out.append("column order differs")
        return out

    def __str__(self) -> str:
        return "; ".join(self.lines()) if self.lines() else "same schema"


@dataclass(frozen=True)
class SampleRow:
    """A row only on one side, with how many more times it is there than on the other."""

    values: Mapping[str, Any]
    count: int = 1

    def __str__(self) -> str:
        text = "(" + ", ".join(f"{k}={v!r}" for k, v in self.values.items()) + ")"
        return f"{text} x{self.count}" if self.count > 1 else text


@dataclass(frozen=True)
class ChangedRow:
    """A key present on both sides whose other values differ: column -> (left, right)."""

    key: Mapping[str, Any]
    changes: Mapping[str, tuple[Any, Any]]

    def __str__(self) -> str:
        key = ", ".join(f"{k}={v!r}" for k, v in self.key.items())
        changes = "; ".join(f"{c}: {lv!r} != {rv!r}" for c, (lv, rv) in self.changes.items())
        return f"{key}: {changes}"


@dataclass(frozen=True)
class DiffSummary:
    """Plain-Python outcome of a comparison: counts and a few sample rows, no DataFrames.

    Cheap to keep, log or store (`as_row()` gives one flat record for a check table).
    """

    columns: tuple[str, ...]
    keys: tuple[str, ...]
    schema: SchemaDiff
    left_rows: int
    right_rows: int
    only_left_rows: int
    only_right_rows: int
    changed_rows: int = 0
    sample_only_left: tuple[SampleRow, ...] = ()
    sample_only_right: tuple[SampleRow, ...] = ()
    sample_changed: tuple[ChangedRow, ...] = ()
    tolerance: tuple[float, float] = (0.0, 0.0)

    @property
    def same(self) -> bool:
        return self.schema.same and self.rows_same

    @property
    def rows_same(self) -> bool:
        return self.only_left_rows == 0 and self.only_right_rows == 0 and self.changed_rows == 0

    def as_row(self) -> dict[str, Any]:
        """One flat record (counts, verdict, message) for a reconciliation table."""
        return {
            "same": self.same,
            "left_rows": self.left_rows,
            "right_rows": self.right_rows,
            "only_left_rows": self.only_left_rows,
            "only_right_rows": self.only_right_rows,
            "changed_rows": self.changed_rows,
            "schema_differences": len(self.schema.lines()),
            "message": str(self),
        }

    def __str__(self) -> str:
        on = ", ".join(self.columns)
        if self.keys:
            on += f" (keys: {', '.join(self.keys)})"
        abs_tol, rel_tol = self.tolerance
        if abs_tol or rel_tol:
            on += f" (tolerance: abs {abs_tol:g}, rel {rel_tol:g})"
        verdict = "DataFrames are the same" if self.same else "DataFrames differ"
        lines = [f"{verdict}: left {self.left_rows} rows, right {self.right_rows} rows"]
        lines += [f"  schema: {line}" for line in self.schema.lines()]
        lines.append(f"  rows compared on: {on}")
        if not self.rows_same:
            counts = f"{self.only_left_rows} only in left, {self.only_right_rows} only in right"
            if self.keys:
                counts += f", {self.changed_rows} changed"
            lines.append(f"  rows: {counts}")
        lines += _samples("only in left", self.only_left_rows, self.sample_only_left)
        lines += _samples("only in right", self.only_right_rows, self.sample_only_right)
        lines += _samples("changed", self.changed_rows, self.sample_changed)
        return "\n".join(lines)


def _samples(title: str, total: int, samples: Sequence[object]) -> list[str]:
    if not samples:
        return []
    lines = [f"  {title}:"] + [f"    {s}" for s in samples]
    shown = sum(getattr(s, "count", 1) for s in samples)
    if total > shown:
        lines.append(f"    ... and {total - shown} more")
    return lines


@dataclass(frozen=True)
class Comparison:
    """The summary plus the differing rows as DataFrames, to inspect or write away.

    `only_left` / `only_right` hold the multiset differences (a row twice in left
    and once in right is there once); with keys they exclude keys found on both
    sides, which are in `changed` (keys, `columns` that differ, `left`, `right`; so
    keys must not be named `columns`, `left` or `right`).
    """

    summary: DiffSummary
    only_left: DataFrame
    only_right: DataFrame
    changed: DataFrame | None = field(default=None)

    @property
    def same(self) -> bool:
        return self.summary.same

    def __str__(self) -> str:
        return str(self.summary)


def _schema_of(df: DataFrame | StructType) -> StructType:
    return df if isinstance(df, StructType) else df.schema


def schema_diff(
    left: DataFrame | StructType,
    right: DataFrame | StructType,
    *,
    check_order: bool = False,
    check_nullable: bool = False,
) -> SchemaDiff:
    """Schema differences by column name.

    Types compare by their SQL form (`bigint`, `array<string>`), so nested nullability
    never counts; top-level nullability counts only with `check_nullable`.
    """
    lfields = {f.name: f for f in _schema_of(left).fields}
    rfields = {f.name: f for f in _schema_of(right).fields}
    common = [n for n in lfields if n in rfields]
    ltype = {n: f.dataType.simpleString() for n, f in lfields.items()}
    rtype = {n: f.dataType.simpleString() for n, f in rfields.items()}
    return SchemaDiff(
        only_left=tuple((n, t) for n, t in ltype.items() if n not in rfields),
        only_right=tuple((n, t) for n, t in rtype.items() if n not in lfields),
        type_changes=tuple((n, ltype[n], rtype[n]) for n in common if ltype[n] != rtype[n]),
        nullable_changes=tuple(
            (n, lfields[n].nullable, rfields[n].nullable)
            for n in common
            if check_nullable and lfields[n].nullable != rfields[n].nullable
        ),
        order_differs=check_order and common != [n for n in rfields if n in lfields],
    )


def _ungroupable(dt: DataType) -> bool:
    """Maps and variants cannot be grouped (nor used in set operations) by Spark."""
    if isinstance(dt, MapType | VariantType):
        return True
    if isinstance(dt, ArrayType):
        return _ungroupable(dt.elementType)
    if isinstance(dt, StructType):
        return any(_ungroupable(f.dataType) for f in dt.fields)
    return False


def _within(left: Column, right: Column, dt: DataType, abs_tol: float, rel_tol: float) -> Column:
    """Null-safe equality; for numbers, also equal when within tolerance."""
    equal = left.eqNullSafe(right)
    if isinstance(dt, NumericType) and (abs_tol or rel_tol):
        bound = sf.lit(abs_tol) + sf.lit(rel_tol) * sf.abs(right.cast("double"))
        close = sf.abs(left.cast("double") - right.cast("double")) <= bound
        equal = equal | sf.coalesce(close, sf.lit(False))
    return equal


def _resolve_columns(
    left: DataFrame,
    right: DataFrame,
    schema: SchemaDiff,
    columns: Sequence[str] | None,
    keys: Sequence[str],
) -> list[str]:
    changed_types = {n for n, _, _ in schema.type_changes}
    if columns is None:
        shared = [c for c in left.columns if c in right.columns and c not in changed_types]
    else:
        for side, df in (("left", left), ("right", right)):
            missing = [c for c in columns if c not in df.columns]
            if missing:
                raise ValueError(f"columns not in {side}: {', '.join(missing)}")
        shared = [c for c in columns if c not in changed_types]
    for key in keys:
        if key not in shared:
            raise ValueError(
                f"key column {key!r} is not compared: it must be in both DataFrames "
                "with the same type (and in `columns` when given)"
            )
    if not shared:
        raise ValueError("no column to compare rows on: the DataFrames share no column of one type")
    maps = [c for c in shared if _ungroupable(left.schema[c].dataType)]
    if maps:
        raise ValueError(
            f"cannot compare map or variant columns ({', '.join(maps)}): Spark cannot group "
            "them; leave them out with `columns=`"
        )
    return shared


def _tagged(left: DataFrame, right: DataFrame, cols: Sequence[str]) -> DataFrame:
    """Both sides in one frame, each row counted 1 for its side: one shuffle finds all."""
    return left.select(*cols, sf.lit(1).alias(_NL), sf.lit(0).alias(_NR)).unionByName(
        right.select(*cols, sf.lit(0).alias(_NL), sf.lit(1).alias(_NR))
    )


def _counts(tagged: DataFrame, by: Sequence[str]) -> DataFrame:
    """Rows per distinct `by` value on each side (nulls and NaNs group together)."""
    return tagged.groupBy(*by).agg(sf.sum(_NL).alias(_NL), sf.sum(_NR).alias(_NR))


def _repeat(df: DataFrame, times: Column, cols: Sequence[str]) -> DataFrame:
    """Each row `times` times: back from counted rows to the multiset."""
    repeated = sf.explode(sf.array_repeat(sf.lit(0), times.cast("int")))
    return df.select(*cols, repeated.alias(_COUNT)).select(*cols)


def _totals(per_group: DataFrame) -> tuple[int, int, int, int, int]:
    """left rows, right rows, rows only left, rows only right, groups with dupes."""
    nl, nr = sf.col(_NL), sf.col(_NR)
    row = per_group.agg(
        sf.sum(nl),
        sf.sum(nr),
        sf.sum(sf.greatest(nl - nr, sf.lit(0))),
        sf.sum(sf.greatest(nr - nl, sf.lit(0))),
        sf.count_if((nl > 1) | (nr > 1)),
    ).first()
    assert row is not None  # a global aggregate always has one row
    return (
        int(row[0] or 0),
        int(row[1] or 0),
        int(row[2] or 0),
        int(row[3] or 0),
        int(row[4] or 0),
    )


def _sample_rows(
    per_row: DataFrame, side_more: Column, times: Column, cols: Sequence[str], limit: int
) -> tuple[SampleRow, ...]:
    rows = per_row.filter(side_more).orderBy(*cols).limit(limit)
    return tuple(
        SampleRow({c: r[c] for c in cols}, int(r[_COUNT]))
        for r in rows.select(*cols, times.alias(_COUNT)).collect()
    )


def _duplicate_keys(per_key: DataFrame, keys: Sequence[str]) -> ValueError:
    nl, nr = sf.col(_NL), sf.col(_NR)
    dupes = per_key.filter((nl > 1) | (nr > 1)).orderBy(*keys).limit(3).collect()
    sides = sorted({"left" if r[_NL] > 1 else "right" for r in dupes})
    example = ", ".join(
        "(" + ", ".join(f"{k}={r[k]!r}" for k in keys) + f") x{max(r[_NL], r[_NR])}" for r in dupes
    )
    return ValueError(
        f"keys ({', '.join(keys)}) are not unique in {' and '.join(sides)}, e.g. {example}; "
        "pass keys that identify one row, or compare without keys"
    )


def compare(
    left: DataFrame,
    right: DataFrame,
    *,
    keys: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    abs_tol: float = 0.0,
    rel_tol: float = 0.0,
    check_order: bool = False,
    check_nullable: bool = False,
    samples: int = 5,
) -> Comparison:
    """Compare `left` with `right`: schema, then rows as multisets.

    Rows are compared on `columns` (default: the columns both sides have with the same
    type, in left's order). With `keys` (unique on each side), rows whose keys appear
    on both sides are *changed* rows, with the columns that differ; numeric values
    within `abs_tol + rel_tol * |right|` count as equal (tolerances need keys, since
    without them there is no pairing of rows). Null equals null, NaN equals NaN.

    Costs one Spark job (two with keys) when the frames are the same, a few more to
    sample the differences.
    """
    key_list = list(keys or [])
    if (abs_tol or rel_tol) and not key_list:
        raise ValueError("abs_tol/rel_tol need keys: rows are paired by key before values compare")
    if abs_tol < 0 or rel_tol < 0:
        raise ValueError("abs_tol and rel_tol must be 0 or more")
    schema = schema_diff(left, right, check_order=check_order, check_nullable=check_nullable)
    cols = _resolve_columns(left, right, schema, columns, key_list)
    tagged = _tagged(left, right, cols)
    values = [c for c in cols if c not in key_list]
    if key_list:
        per_key = _counts(tagged, key_list)
        left_rows, right_rows, _, _, dupes = _totals(per_key)
        if dupes:
            raise _duplicate_keys(per_key, key_list)
    per_row = _counts(tagged, cols)
    nl, nr = sf.col(_NL), sf.col(_NR)
    only_left = _repeat(per_row.filter(nl > nr), nl - nr, cols)
    only_right = _repeat(per_row.filter(nr > nl), nr - nl, cols)
    if not (key_list and values):  # no keys, or nothing but keys: nothing can be "changed"
        left_rows, right_rows, only_left_rows, only_right_rows, _ = _totals(per_row)
        summary = DiffSummary(
            columns=tuple(cols),
            keys=tuple(key_list),
            schema=schema,
            left_rows=left_rows,
            right_rows=right_rows,
            only_left_rows=only_left_rows,
            only_right_rows=only_right_rows,
            sample_only_left=_sample_rows(per_row, nl > nr, nl - nr, cols, samples)
            if only_left_rows and samples > 0
            else (),
            sample_only_right=_sample_rows(per_row, nr > nl, nr - nl, cols, samples)
            if only_right_rows and samples > 0
            else (),
        )
        return Comparison(summary, only_left, only_right, None)

    # materialised once: only differing keys, read again for counts, samples and results
    paired = _pair_by_key(
        per_row.filter(nl != nr), key_list, values, abs_tol, rel_tol
    ).localCheckpoint()
    kinds = {
        r[_KIND]: int(r["n"]) for r in paired.groupBy(_KIND).agg(sf.count("*").alias("n")).collect()
    }
    only_left = paired.filter(sf.col(_KIND) == "left").select(*key_list, "left.*").select(*cols)
    only_right = paired.filter(sf.col(_KIND) == "right").select(*key_list, "right.*").select(*cols)
    changed = paired.filter(sf.col(_KIND) == "changed").select(
        *key_list, DIFF_COLUMNS, "left", "right"
    )
    sampled: dict[str, list[Any]] = {"left": [], "right": [], "changed": []}
    if samples > 0 and any(kinds.get(k) for k in sampled):
        rank = sf.row_number().over(Window.partitionBy(_KIND).orderBy(*key_list))
        picked = paired.filter(sf.col(_KIND) != "equal").withColumn(_COUNT, rank)
        for r in picked.filter(sf.col(_COUNT) <= samples).orderBy(_KIND, _COUNT).collect():
            key = {k: r[k] for k in key_list}
            if r[_KIND] == "changed":
                sampled["changed"].append(
                    ChangedRow(key, {c: (r["left"][c], r["right"][c]) for c in r[DIFF_COLUMNS]})
                )
            else:
                row = r[r[_KIND]]
                sampled[r[_KIND]].append(
                    SampleRow({c: key[c] if c in key else row[c] for c in cols})
                )
    summary = DiffSummary(
        columns=tuple(cols),
        keys=tuple(key_list),
        schema=schema,
        left_rows=left_rows,
        right_rows=right_rows,
        only_left_rows=kinds.get("left", 0),
        only_right_rows=kinds.get("right", 0),
        changed_rows=kinds.get("changed", 0),
        sample_only_left=tuple(sampled["left"]),
        sample_only_right=tuple(sampled["right"]),
        sample_changed=tuple(sampled["changed"]),
        tolerance=(abs_tol, rel_tol),
    )
    return Comparison(summary, only_left, only_right, changed)


def _pair_by_key(
    differing_rows: DataFrame,
    keys: Sequence[str],
    values: Sequence[str],
    abs_tol: float,
    rel_tol: float,
) -> DataFrame:
    """One row per differing key: its left and right values and what kind of difference.

    With unique keys every differing row is on one side only; a key with a row on
    each side is `changed`, or `equal` when all values are within tolerance.
    """
    types = {f.name: f.dataType for f in differing_rows.schema.fields}
    row = sf.struct(*values)
    per_key = differing_rows.groupBy(*keys).agg(
        sf.first(sf.when(sf.col(_NL) > 0, row), ignorenulls=True).alias("left"),
        sf.first(sf.when(sf.col(_NR) > 0, row), ignorenulls=True).alias("right"),
    )
    lhs, rhs = sf.col("left"), sf.col("right")
    differing = sf.array_compact(
        sf.array(
            *[
                sf.when(~_within(lhs[v], rhs[v], types[v], abs_tol, rel_tol), sf.lit(v))
                for v in values
            ]
        )
    )
    kind = (
        sf.when(lhs.isNull(), "right")
        .when(rhs.isNull(), "left")
        .when(sf.size(differing) > 0, "changed")
        .otherwise("equal")
    )
    return per_key.select(*keys, differing.alias(DIFF_COLUMNS), lhs, rhs, kind.alias(_KIND))


def assert_same(
    left: DataFrame,
    right: DataFrame,
    *,
    keys: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    abs_tol: float = 0.0,
    rel_tol: float = 0.0,
    check_order: bool = False,
    check_nullable: bool = False,
    samples: int = 5,
) -> None:
    """Raise `DataFrameDiffError` (an AssertionError) with the summary unless the same."""
    result = compare(
        left,
        right,
        keys=keys,
        columns=columns,
        abs_tol=abs_tol,
        rel_tol=rel_tol,
        check_order=check_order,
        check_nullable=check_nullable,
        samples=samples,
    )
    if not result.same:
        raise DataFrameDiffError(result.summary)
