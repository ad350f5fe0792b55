"""Compare PySpark DataFrames: schema differences, multiset row differences, assertions."""

from dfcompare.compare import (
    ChangedRow,
    Comparison,
    DataFrameDiffError,
    DiffSummary,
    SampleRow,
    SchemaDiff,
    assert_same,
    compare,
    schema_diff,
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
