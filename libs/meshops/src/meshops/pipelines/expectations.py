"""Expectations on the rows a flow writes (a materialized view's result or a micro-batch).

Lakeflow's semantics: every expectation is evaluated on every input row; a row passes when its
condition is true (false or NULL fails it); `warn` rows are kept, `drop` rows are removed
before the write, and a failing `fail` expectation stops the update with nothing of the batch
written.

`guard` puts them in the write's own Spark job: the drop expectations are a filter, and a
`fail` expectation is `raise_error` on the first failing row (its JSON in the message), which
aborts the job and so the Delta commit. The passed and failed counts per expectation come from
one aggregation over the same rows once the write succeeded (Spark's `Observation` would count
during the write, but Delta runs the write's query in a query execution of its own, whose
observed metrics never reach it). `check` is the eager form, for views, which write nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshops.pipelines.errors import ExpectationViolation, PipelineError
from meshops.pipelines.graph import Expectation

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

FAILED_COLUMN = "_failed_expectations"
"""Quarantine tables: the names of the expectations a dropped row failed."""
_FLAG = "__meshops_expectation_{}"
_MARK = "MESHOPS_EXPECTATION_FAILED"
_FAILURE = re.compile(_MARK + r"<(\d+)>(.*?)</" + _MARK + ">", re.S)


@dataclass(frozen=True)
class Outcome:
    """Passed and failed rows of one expectation in one batch."""

    expectation: Expectation
    passed: int
    failed: int


@dataclass(frozen=True)
class Counts:
    input_rows: int
    output_rows: int
    outcomes: list[Outcome]


@dataclass
class Guarded:
    """A batch with its expectations in place: write `kept`, then read `counts()`."""

    kept: DataFrame
    dropped: DataFrame | None
    """Rows failing a drop expectation, with `_failed_expectations` (None without any); a
    second computation of the query."""
    expectations: Sequence[Expectation]
    metrics: DataFrame
    dataset: str
    flow: str

    def counts(self) -> Counts:
        """What the write saw (call it after the write's action ran)."""
        found = self.metrics.first()
        metrics = found.asDict() if found is not None else {}
        total = int(metrics.get("input") or 0)
        outcomes = []
        for index, expectation in enumerate(self.expectations):
            failed = int(metrics.get(_FLAG.format(index)) or 0)
            outcomes.append(Outcome(expectation, total - failed, failed))
        return Counts(total, int(metrics.get("kept") or 0), outcomes)

    def violation(self, error: BaseException) -> ExpectationViolation | None:
        """The expectation failure a failed write carries, if that is why it failed."""
        found = _FAILURE.search(str(error))
        if found is None:
            return None
        expectation = self.expectations[int(found.group(1))]
        return ExpectationViolation(
            expectation=expectation.name,
            condition=expectation.condition,
            dataset=self.dataset,
            flow=self.flow,
            sample=found.group(2),
        )


def guard(
    frame: DataFrame, expectations: Sequence[Expectation], *, dataset: str, flow: str
) -> Guarded:
    """`frame` with `expectations` applied as its write computes it (see the module doc)."""
    from pyspark.sql import functions as F

    columns = frame.columns
    flags = [_FLAG.format(i) for i in range(len(expectations))]
    flagged = _flagged(frame, expectations, flags, dataset, flow)
    keep = _all(F.col(f) for e, f in zip(expectations, flags, strict=True) if e.action == "drop")
    metrics = [
        F.count(F.lit(1)).alias("input"),
        F.sum(F.when(keep, 1).otherwise(0)).alias("kept"),
        *(F.sum(F.when(F.col(flag), 0).otherwise(1)).alias(flag) for flag in flags),
    ]
    stop: Column = F.lit(True)
    row = F.to_json(F.struct(*(F.col(f"`{c}`") for c in columns)))
    for index, (expectation, flag) in enumerate(zip(expectations, flags, strict=True)):
        if expectation.action == "fail":
            message = F.concat(F.lit(f"{_MARK}<{index}>"), row, F.lit(f"</{_MARK}>"))
            stop = stop & F.when(~F.col(flag), F.raise_error(message)).otherwise(F.lit(True))
    kept = flagged.filter(keep & stop).drop(*flags)
    return Guarded(
        kept=kept,
        dropped=_dropped(flagged, expectations, flags, keep),
        expectations=expectations,
        metrics=flagged.agg(*metrics),
        dataset=dataset,
        flow=flow,
    )


def check(
    frame: DataFrame, expectations: Sequence[Expectation], *, dataset: str, flow: str
) -> tuple[DataFrame, Counts]:
    """Count now (one aggregation), raise for a failing `fail`; the rows to keep, lazily."""
    from pyspark.sql import functions as F

    flags = [_FLAG.format(i) for i in range(len(expectations))]
    flagged = _flagged(frame, expectations, flags, dataset, flow)
    keep = _all(F.col(f) for e, f in zip(expectations, flags, strict=True) if e.action == "drop")
    counts = flagged.agg(
        F.count(F.lit(1)).alias("input"),
        F.sum(F.when(keep, 1).otherwise(0)).alias("kept"),
        *(F.sum(F.when(F.col(flag), 0).otherwise(1)).alias(flag) for flag in flags),
    ).first()
    assert counts is not None  # an aggregation without grouping has one row
    total = int(counts["input"])
    outcomes = [
        Outcome(e, total - int(counts[flag] or 0), int(counts[flag] or 0))
        for e, flag in zip(expectations, flags, strict=True)
    ]
    for outcome, flag in zip(outcomes, flags, strict=True):
        if outcome.expectation.action == "fail" and outcome.failed:
            sample = flagged.filter(~F.col(flag)).drop(*flags).select(F.to_json(F.struct("*")))
            first = sample.first()
            raise ExpectationViolation(
                expectation=outcome.expectation.name,
                condition=outcome.expectation.condition,
                dataset=dataset,
                flow=flow,
                sample=str(first[0]) if first is not None else "{}",
            )
    kept = flagged.filter(keep).drop(*flags)
    return kept, Counts(total, int(counts["kept"] or 0), outcomes)


def _flagged(
    frame: DataFrame,
    expectations: Sequence[Expectation],
    flags: list[str],
    dataset: str,
    flow: str,
) -> DataFrame:
    """`frame` plus one boolean column per expectation: the row passes it."""
    from pyspark.sql import functions as F

    try:
        return frame.select(
            "*",
            *(
                F.coalesce(F.expr(e.condition).cast("boolean"), F.lit(False)).alias(flag)
                for e, flag in zip(expectations, flags, strict=True)
            ),
        )
    except Exception as exc:
        raise PipelineError(
            f"expectations of dataset '{dataset}' (flow '{flow}') do not apply to its rows: "
            f"{_reason(exc)}; check the columns they name: "
            + ", ".join(f"'{e.name}' ({e.where})" for e in expectations)
        ) from exc


def _dropped(
    flagged: DataFrame, expectations: Sequence[Expectation], flags: list[str], keep: Column
) -> DataFrame | None:
    from pyspark.sql import functions as F

    if not any(e.action == "drop" for e in expectations):
        return None
    names = F.array(
        *(F.when(~F.col(f), F.lit(e.name)) for e, f in zip(expectations, flags, strict=True))
    )
    return (
        flagged.filter(~keep)
        .withColumn(FAILED_COLUMN, F.filter(names, lambda name: name.isNotNull()))
        .drop(*flags)
    )


def _all(columns: Any) -> Column:
    from pyspark.sql import functions as F

    result: Column = F.lit(True)
    for column in columns:
        result = result & column
    return result


def _reason(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
