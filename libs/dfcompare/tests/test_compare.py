"""dfcompare on a local Spark: schema differences, multiset rows, keys, tolerance, messages."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    DoubleType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from dfcompare import (
    ChangedRow,
    DataFrameDiffError,
    SampleRow,
    SchemaDiff,
    assert_same,
    compare,
    schema_diff,
)

pytestmark = pytest.mark.spark

SCHEMA = "borough string, trips bigint, revenue double"


def df(spark: SparkSession, rows: list[tuple[object, ...]], schema: str = SCHEMA) -> DataFrame:
    return spark.createDataFrame(rows, schema)


def test_identical_frames_in_other_order_are_the_same(spark: SparkSession) -> None:
    left = df(spark, [("Bronx", 2, 10.0), ("Queens", 1, 5.5), ("Queens", 1, 5.5)])
    right = df(spark, [("Queens", 1, 5.5), ("Bronx", 2, 10.0), ("Queens", 1, 5.5)])
    result = compare(left, right)
    assert result.same
    assert result.summary.left_rows == result.summary.right_rows == 3
    assert (result.summary.only_left_rows, result.summary.only_right_rows) == (0, 0)
    assert result.only_left.count() == 0
    assert_same(left, right)
    assert str(result).startswith("DataFrames are the same: left 3 rows, right 3 rows")


def test_multiset_semantics_count_duplicates(spark: SparkSession) -> None:
    left = df(spark, [("Bronx", 2, 10.0)] * 3 + [("EWR", 1, 70.0)])
    right = df(spark, [("Bronx", 2, 10.0), ("Queens", 1, 5.5), ("Queens", 1, 5.5)])
    result = compare(left, right)
    s = result.summary
    assert not result.same
    assert (s.only_left_rows, s.only_right_rows, s.changed_rows) == (3, 2, 0)
    assert s.sample_only_left == (
        SampleRow({"borough": "Bronx", "trips": 2, "revenue": 10.0}, 2),
        SampleRow({"borough": "EWR", "trips": 1, "revenue": 70.0}, 1),
    )
    assert s.sample_only_right == (SampleRow({"borough": "Queens", "trips": 1, "revenue": 5.5}, 2),)
    assert sorted(result.only_left.collect()) == sorted(
        [("Bronx", 2, 10.0), ("Bronx", 2, 10.0), ("EWR", 1, 70.0)]
    )
    assert result.changed is None


def test_nulls_and_nan_equal_themselves(spark: SparkSession) -> None:
    rows = [(None, None, float("nan")), ("Bronx", 1, None)]
    assert compare(df(spark, rows), df(spark, list(reversed(rows)))).same


def test_schema_differences_reported_and_rows_compared_on_shared_columns(
    spark: SparkSession,
) -> None:
    left = df(spark, [("Bronx", 2, 10.0, 1)], SCHEMA + ", extra int")
    right = df(
        spark,
        [("Bronx", 2, "10.0", "x")],
        "borough string, trips bigint, revenue string, note string",
    )
    result = compare(left, right)
    assert result.summary.schema == SchemaDiff(
        only_left=(("extra", "int"),),
        only_right=(("note", "string"),),
        type_changes=(("revenue", "double", "string"),),
    )
    assert result.summary.columns == ("borough", "trips")
    assert result.summary.rows_same
    assert not result.same
    message = str(result.summary)
    assert "schema: column only in left: extra (int)" in message
    assert "schema: column only in right: note (string)" in message
    assert "schema: type of revenue: double (left) != string (right)" in message
    assert "rows compared on: borough, trips" in message


def test_schema_diff_order_and_nullability_only_when_asked() -> None:
    left = StructType([StructField("a", LongType(), False), StructField("b", StringType())])
    right = StructType([StructField("b", StringType()), StructField("a", LongType(), True)])
    assert schema_diff(left, right).same
    strict = schema_diff(left, right, check_order=True, check_nullable=True)
    assert strict.order_differs
    assert strict.nullable_changes == (("a", False, True),)
    assert str(strict) == "nullable of a: False (left) != True (right); column order differs"


def test_keys_split_changed_rows_from_rows_on_one_side(spark: SparkSession) -> None:
    left = df(spark, [("Bronx", 2, 10.0), ("Queens", 1, 5.5), ("EWR", 1, 70.0)])
    right = df(spark, [("Bronx", 2, 10.5), ("Queens", 3, 6.0), ("Brooklyn", 4, 20.0)])
    result = compare(left, right, keys=["borough"])
    s = result.summary
    assert (s.only_left_rows, s.only_right_rows, s.changed_rows) == (1, 1, 2)
    assert s.sample_changed == (
        ChangedRow({"borough": "Bronx"}, {"revenue": (10.0, 10.5)}),
        ChangedRow({"borough": "Queens"}, {"trips": (1, 3), "revenue": (5.5, 6.0)}),
    )
    assert result.changed is not None
    changed = {r["borough"]: r["columns"] for r in result.changed.collect()}
    assert changed == {"Bronx": ["revenue"], "Queens": ["trips", "revenue"]}
    assert [r["borough"] for r in result.only_left.collect()] == ["EWR"]
    assert [r["borough"] for r in result.only_right.collect()] == ["Brooklyn"]
    assert str(s) == "\n".join(
        [
            "DataFrames differ: left 3 rows, right 3 rows",
            "  rows compared on: borough, trips, revenue (keys: borough)",
            "  rows: 1 only in left, 1 only in right, 2 changed",
            "  only in left:",
            "    (borough='EWR', trips=1, revenue=70.0)",
            "  only in right:",
            "    (borough='Brooklyn', trips=4, revenue=20.0)",
            "  changed:",
            "    borough='Bronx': revenue: 10.0 != 10.5",
            "    borough='Queens': trips: 1 != 3; revenue: 5.5 != 6.0",
        ]
    )


def test_null_keys_pair_with_null_keys(spark: SparkSession) -> None:
    left = df(spark, [(None, 1, 1.0)])
    right = df(spark, [(None, 1, 2.0)])
    result = compare(left, right, keys=["borough"])
    assert result.summary.changed_rows == 1
    assert result.summary.only_left_rows == result.summary.only_right_rows == 0


def test_tolerance_pairs_close_values(spark: SparkSession) -> None:
    left = df(spark, [("Bronx", 2, 10.0), ("Queens", 1, 100.0)])
    right = df(spark, [("Bronx", 2, 10.004), ("Queens", 1, 100.9)])
    loose = compare(left, right, keys=["borough"], abs_tol=0.005)
    assert loose.summary.changed_rows == 1
    assert loose.summary.sample_changed[0].key == {"borough": "Queens"}
    assert compare(left, right, keys=["borough"], rel_tol=0.01).same
    assert "(tolerance: abs 0.005, rel 0)" in str(loose.summary)
    # a null never matches a number, whatever the tolerance
    assert not compare(
        df(spark, [("Bronx", 2, None)]),
        df(spark, [("Bronx", 2, 0.0)]),
        keys=["borough"],
        abs_tol=1.0,
    ).same


def test_assert_same_raises_with_the_summary(spark: SparkSession) -> None:
    left = df(spark, [("Bronx", 2, 10.0)])
    right = df(spark, [("Bronx", 2, 11.0)])
    with pytest.raises(DataFrameDiffError) as caught:
        assert_same(left, right, keys=["borough"])
    assert isinstance(caught.value, AssertionError)
    assert caught.value.summary.changed_rows == 1
    assert "borough='Bronx': revenue: 10.0 != 11.0" in str(caught.value)


def test_samples_are_limited_and_the_rest_counted(spark: SparkSession) -> None:
    left = df(spark, [(f"b{i:02d}", i, float(i)) for i in range(12)])
    right = df(spark, [("x", 0, 0.0)])
    summary = compare(left, right, samples=3).summary
    assert [s.values["borough"] for s in summary.sample_only_left] == ["b00", "b01", "b02"]
    assert "    ... and 9 more" in str(summary)


def test_columns_subset_and_column_named_count(spark: SparkSession) -> None:
    schema = "borough string, count bigint, revenue double"
    left = df(spark, [("Bronx", 2, 10.0), ("Bronx", 2, 10.0)], schema)
    right = df(spark, [("Bronx", 2, 99.0)], schema)
    result = compare(left, right, columns=["borough", "count"])
    assert result.summary.columns == ("borough", "count")
    assert result.summary.sample_only_left == (SampleRow({"borough": "Bronx", "count": 2}, 1),)


def test_map_columns_are_compared_and_sampled(spark: SparkSession) -> None:
    schema = StructType(
        [StructField("id", LongType()), StructField("tags", MapType(StringType(), DoubleType()))]
    )
    left = spark.createDataFrame([(1, {"a": 1.0})], schema)
    right = spark.createDataFrame([(1, {"a": 2.0})], schema)
    result = compare(left, right, columns=["id"])
    assert result.same


def test_as_row_is_a_flat_record(spark: SparkSession) -> None:
    left = df(spark, [("Bronx", 2, 10.0)])
    row = compare(left, left).summary.as_row()
    assert row["same"] is True
    assert (row["left_rows"], row["changed_rows"], row["schema_differences"]) == (1, 0, 0)
    assert row["message"].startswith("DataFrames are the same")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"abs_tol": 0.1}, "abs_tol/rel_tol need keys"),
        ({"keys": ["nope"]}, "key column 'nope' is not compared"),
        ({"columns": ["nope"]}, "columns not in left: nope"),
        ({"keys": ["borough"], "abs_tol": -1.0}, "must be 0 or more"),
    ],
)
def test_bad_arguments_say_what_to_do(
    spark: SparkSession, kwargs: dict[str, object], message: str
) -> None:
    frame = df(spark, [("Bronx", 2, 10.0)])
    with pytest.raises(ValueError, match=message):
        compare(frame, frame, **kwargs)  # type: ignore[arg-type]


def test_duplicate_keys_are_rejected(spark: SparkSession) -> None:
    left = df(spark, [("Bronx", 2, 10.0), ("Bronx", 3, 11.0)])
    with pytest.raises(ValueError, match=r"not unique in left, e.g. \(borough='Bronx'\) x2"):
        compare(left, left, keys=["borough"])


def test_no_shared_column_is_rejected(spark: SparkSession) -> None:
    with pytest.raises(ValueError, match="share no column"):
        compare(df(spark, [(1,)], "a int"), df(spark, [(1,)], "b int"))


small_rows = st.lists(st.tuples(st.sampled_from(["a", "b", None]), st.integers(0, 2)), max_size=8)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(left_rows=small_rows, right_rows=small_rows)
def test_row_differences_are_multiset_differences(
    spark: SparkSession,
    left_rows: list[tuple[str | None, int]],
    right_rows: list[tuple[str | None, int]],
) -> None:
    schema = "k string, v int"
    result = compare(
        spark.createDataFrame(left_rows, schema), spark.createDataFrame(right_rows, schema)
    )
    left, right = Counter(left_rows), Counter(right_rows)
    assert Counter(map(tuple, result.only_left.collect())) == left - right
    assert Counter(map(tuple, result.only_right.collect())) == right - left
    assert result.summary.only_left_rows == sum((left - right).values())
    assert result.summary.only_right_rows == sum((right - left).values())
    assert result.same == (left == right)
