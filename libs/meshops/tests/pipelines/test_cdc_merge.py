"""AUTO CDC (`apply_changes`) merges, `meshops.pipelines.cdc` on its own: SCD type 1 and 2
over several batches, against tables computed by hand from Lakeflow's documented semantics.

Each batch is what one streaming micro-batch hands `foreachBatch`: updates, deletes, events
that arrive late (a lower sequence than the target holds) and events delivered twice. (The
flows through a whole pipeline are in test_cdc.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from meshops.engine import session
from meshops.pipelines.cdc import (
    CdcError,
    CdcSpec,
    apply_cdc_batch,
    column_name,
    reset_state,
    state_table,
    target_schema,
)

CATALOG = "acme_cdc"
CHANGES = "id int, name string, city string, op string, seq int"
HISTORY = "id int, name string, city string, __START_AT int, __END_AT int"
CURRENT = "id int, name string, city string"


@pytest.fixture
def schema(spark: SparkSession, request: pytest.FixtureRequest) -> Iterator[str]:
    session.register_catalogs(spark, [CATALOG])
    name = f"{CATALOG}.c_{request.node.name.removeprefix('test_')[:40]}"
    spark.sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    spark.sql(f"CREATE SCHEMA {name}")
    yield name
    spark.sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def spec(target: str, scd: int | str = 1, **kwargs: Any) -> CdcSpec:
    args: dict[str, Any] = {
        "keys": ["id"],
        "sequence_by": F.col("seq"),
        "apply_as_deletes": F.expr("op = 'D'"),
        "except_column_list": ["op", "seq"],
    }
    args.update(kwargs)
    return CdcSpec(target=target, source="changes", stored_as_scd_type=scd, **args)


def apply(spark: SparkSession, table: str, flow: CdcSpec, rows: list[tuple[Any, ...]]) -> int:
    return apply_cdc_batch(spark, spark.createDataFrame(rows, CHANGES), table, flow)


# ---- SCD type 1 --------------------------------------------------------------------------


@pytest.mark.spark
def test_scd1_keeps_the_latest_change_per_key_across_batches(
    spark: SparkSession, schema: str
) -> None:
    table = f"{schema}.users"
    flow = spec(table)
    written = apply(
        spark,
        table,
        flow,
        [
            (1, "a", "X", "I", 1),
            (2, "b", "Y", "I", 1),
            (2, "b", "Y2", "U", 3),  # the highest sequence of key 2 in the batch wins
            (3, "c", "Z", "I", 2),
            (3, "c", "Z", "I", 2),  # delivered twice
        ],
    )
    assert written == 3
    assertDataFrameEqual(
        spark.table(table),
        spark.createDataFrame([(1, "a", "X"), (2, "b", "Y2"), (3, "c", "Z")], CURRENT),
    )
    apply(
        spark,
        table,
        flow,
        [
            (2, "b", "Y1", "U", 2),  # late: the target holds key 2 at sequence 3
            (1, None, None, "D", 5),
            (3, "c", "Z3", "U", 4),
            (4, "d", "W", "I", 4),
        ],
    )
    assertDataFrameEqual(
        spark.table(table),
        spark.createDataFrame([(2, "b", "Y2"), (3, "c", "Z3"), (4, "d", "W")], CURRENT),
    )
    apply(
        spark,
        table,
        flow,
        [
            (1, "a", "Xold", "U", 4),  # late, after the delete at 5: the tombstone holds
            (1, "a2", "X2", "I", 7),  # a new insert after the delete
            (4, None, None, "D", 3),  # a late delete changes nothing
            (3, "c", "Z3", "U", 4),  # an applied event delivered again
            (5, "e", "V", "I", 6),
            (5, None, None, "D", 8),  # inserted and deleted in one batch
        ],
    )
    expected = [(1, "a2", "X2"), (2, "b", "Y2"), (3, "c", "Z3"), (4, "d", "W")]
    assertDataFrameEqual(spark.table(table), spark.createDataFrame(expected, CURRENT))
    # replaying a whole batch (a micro-batch retried after a crash) changes nothing
    assert apply(spark, table, flow, [(1, "a2", "X2", "I", 7), (5, None, None, "D", 8)]) == 0
    state = spark.table(state_table(table)).where("id = 5").first()
    assert state is not None and state["__meshops_deleted"] is True


@pytest.mark.spark
def test_scd1_ignore_null_updates_keeps_values_and_truncate_empties_the_table(
    spark: SparkSession, schema: str
) -> None:
    table = f"{schema}.users"
    flow = spec(table, ignore_null_updates=True, apply_as_truncates="op = 'T'")
    apply(spark, table, flow, [(1, "a", "X", "I", 1), (2, "b", "Y", "I", 1), (3, "c", "Z", "I", 1)])
    apply(
        spark,
        table,
        flow,
        [
            (1, None, "X2", "U", 2),
            (1, "a3", None, "U", 3),  # nulls keep the batch's and the target's values
            (2, None, None, "D", 2),
            (2, None, "Y3", "I", 3),  # after a delete nothing is kept: name stays null
        ],
    )
    assertDataFrameEqual(
        spark.table(table),
        spark.createDataFrame([(1, "a3", "X2"), (2, None, "Y3"), (3, "c", "Z")], CURRENT),
    )
    apply(
        spark,
        table,
        flow,
        [
            (None, None, None, "T", 3),  # every row sequenced before 3 goes
            (4, "d", "W", "I", 4),
            (5, "e", "V", "I", 2),  # before the truncate: never lands
        ],
    )
    assertDataFrameEqual(
        spark.table(table),
        spark.createDataFrame([(1, "a3", "X2"), (2, None, "Y3"), (4, "d", "W")], CURRENT),
    )


# ---- SCD type 2 --------------------------------------------------------------------------


@pytest.mark.spark
def test_scd2_history_over_batches_equals_the_hand_computed_table(
    spark: SparkSession, schema: str
) -> None:
    table = f"{schema}.users"
    flow = spec(table, scd="2")
    apply(
        spark,
        table,
        flow,
        [
            (1, "a", "X", "I", 1),
            (1, "a", "X2", "U", 3),
            (1, "a", "X2", "U", 4),  # nothing tracked changed: no new version
            (2, "b", "Y", "I", 2),
            (2, "b", "Y", "I", 2),  # delivered twice
        ],
    )
    assertDataFrameEqual(
        spark.table(table),
        spark.createDataFrame(
            [(1, "a", "X", 1, 3), (1, "a", "X2", 3, None), (2, "b", "Y", 2, None)], HISTORY
        ),
    )
    apply(
        spark,
        table,
        flow,
        [
            (1, "a", "X1", "U", 2),  # late: splits the version [1, 3)
            (2, None, None, "D", 5),  # closes the current version at 5
            (3, "c", "Z", "I", 3),
        ],
    )
    apply(
        spark,
        table,
        flow,
        [
            (2, "b", "Y6", "I", 6),  # back after the delete
            (3, None, None, "D", 2),  # a late delete before key 3 existed: no effect
            (1, "a", "X2", "U", 3),  # delivered again
            (2, "b", "Y", "U", 4),  # late, same values as the version it falls in
            (4, "d", "W", "I", 1),
            (4, "d", "W2", "U", 2),
            (4, None, None, "D", 3),  # a whole life in one batch
        ],
    )
    expected = [
        (1, "a", "X", 1, 2),
        (1, "a", "X1", 2, 3),
        (1, "a", "X2", 3, None),
        (2, "b", "Y", 2, 5),
        (2, "b", "Y6", 6, None),
        (3, "c", "Z", 3, None),
        (4, "d", "W", 1, 2),
        (4, "d", "W2", 2, 3),
    ]
    assertDataFrameEqual(spark.table(table), spark.createDataFrame(expected, HISTORY))


@pytest.mark.spark
def test_scd2_the_documented_example_and_history_tracked_on_some_columns(
    spark: SparkSession, schema: str
) -> None:
    # the example of Databricks' AUTO CDC documentation: one batch, out of order
    rows = [
        (124, "Raul", "Oaxaca", "INSERT", 1),
        (123, "Isabel", "Monterrey", "INSERT", 1),
        (125, "Mercedes", "Tijuana", "INSERT", 2),
        (126, "Lily", "Cancun", "INSERT", 2),
        (123, None, None, "DELETE", 6),
        (125, "Mercedes", "Guadalajara", "UPDATE", 6),
        (125, "Mercedes", "Mexicali", "UPDATE", 5),
        (123, "Isabel", "Chihuahua", "UPDATE", 5),
    ]
    changes = spark.createDataFrame(rows, CHANGES)
    table = f"{schema}.users"
    flow = spec(
        table,
        scd=2,
        sequence_by="seq",
        apply_as_deletes="op = 'DELETE'",
        track_history_except_column_list=["city"],
    )
    assert apply_cdc_batch(spark, changes, table, flow) == 4
    documented = [
        (123, "Isabel", "Chihuahua", 1, 6),
        (124, "Raul", "Oaxaca", 1, None),
        (125, "Mercedes", "Guadalajara", 2, None),
        (126, "Lily", "Cancun", 2, None),
    ]
    assertDataFrameEqual(spark.table(table), spark.createDataFrame(documented, HISTORY))
    # a later batch: a name change opens a version; a late city change in an older
    # version does not overwrite the newer city the version holds
    apply(
        spark,
        table,
        flow,
        [(124, "Raúl", "Oaxaca", "UPDATE", 7), (125, "Mercedes", "Tijuana", "UPDATE", 3)],
    )
    expected = [
        *[r for r in documented if r[0] != 124],
        (124, "Raul", "Oaxaca", 1, 7),
        (124, "Raúl", "Oaxaca", 7, None),
    ]
    assertDataFrameEqual(spark.table(table), spark.createDataFrame(expected, HISTORY))


@pytest.mark.spark
def test_a_struct_sequence_orders_by_its_fields_and_types_the_history(
    spark: SparkSession, schema: str
) -> None:
    table = f"{schema}.users"
    flow = spec(table, scd=2, sequence_by=F.struct("day", "seq"), except_column_list=["op"])
    source = "id int, city string, op string, day int, seq int"
    rows = [(1, "X", "I", 1, 9), (1, "Y", "U", 2, 1), (1, "Z", "U", 1, 10)]
    apply_cdc_batch(spark, spark.createDataFrame(rows, source), table, flow)
    result = spark.table(table).orderBy("__START_AT")
    assert result.schema["__START_AT"].dataType.simpleString() == "struct<day:int,seq:int>"
    history = [(r["city"], r["__START_AT"], r["__END_AT"]) for r in result.collect()]
    assert [(city, tuple(start), end and tuple(end)) for city, start, end in history] == [
        ("X", (1, 9), (1, 10)),
        ("Z", (1, 10), (2, 1)),
        ("Y", (2, 1), None),
    ]


@pytest.mark.spark
def test_a_target_made_again_starts_with_fresh_state(spark: SparkSession, schema: str) -> None:
    table = f"{schema}.users"
    flow = spec(table)
    apply(spark, table, flow, [(1, "a", "X", "I", 5)])
    spark.sql(f"DROP TABLE {table}")  # a full refresh drops the target
    apply(spark, table, flow, [(1, "a", "X", "I", 1)])  # older than the old state: lands
    assertDataFrameEqual(spark.table(table), spark.createDataFrame([(1, "a", "X")], CURRENT))
    reset_state(spark, table)
    assert not spark.catalog.tableExists(state_table(table))


@pytest.mark.spark
def test_a_null_sequence_fails_the_batch_naming_the_target(
    spark: SparkSession, schema: str
) -> None:
    table = f"{schema}.users"
    with pytest.raises(CdcError, match=rf"AUTO CDC into {table}: .*null sequence_by"):
        apply(spark, table, spec(table), [(1, "a", "X", "I", None)])


@pytest.mark.spark
def test_target_schema_drops_excepted_columns_and_types_the_history_columns(
    spark: SparkSession,
) -> None:
    source = StructType([StructField(n, IntegerType()) for n in ("id", "v", "op", "seq")])
    scd2 = target_schema(source, spec("t", scd=2))
    assert [f.name for f in scd2] == ["id", "v", "__START_AT", "__END_AT"]
    assert scd2["__END_AT"].dataType == IntegerType()
    scd1 = target_schema(source, spec("t", except_column_list=None, column_list=["v", "id"]))
    assert scd1.names == ["id", "v"]
    with pytest.raises(CdcError, match=r"AUTO CDC into t: except_column_list names \['nope'\]"):
        target_schema(source, spec("t", except_column_list=["nope"]))
    with pytest.raises(CdcError, match=r"column_list leaves out the keys \['id'\]"):
        target_schema(source, spec("t", except_column_list=None, column_list=["v"]))


# ---- without a JVM -----------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stored_as_scd_type": 3}, "stored_as_scd_type is 3: expected 1 or 2"),
        ({"keys": []}, "keys expected a non-empty list"),
        ({"column_list": ["a"], "except_column_list": ["b"]}, "not both"),
        ({"track_history_column_list": ["a"]}, "only SCD type 2 tracks history"),
        (
            {"stored_as_scd_type": "2", "apply_as_truncates": "op = 'T'"},
            "SCD type 2 does not support truncates",
        ),
        (
            {
                "stored_as_scd_type": 2,
                "track_history_column_list": ["a"],
                "track_history_except_column_list": ["b"],
            },
            "track_history_column_list or track_history_except_column_list, not both",
        ),
    ],
)
def test_a_flow_written_wrong_is_refused_naming_target_and_argument(
    kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"target": "c.s.dim", "source": "feed", "keys": ["id"]}
    args.update(kwargs)
    with pytest.raises(CdcError, match="AUTO CDC into c.s.dim: ") as raised:
        CdcSpec(sequence_by="seq", **args)
    assert message in str(raised.value)


@pytest.mark.unit
def test_column_names_from_strings_and_column_text() -> None:
    class Shown:
        def __init__(self, text: str) -> None:
            self.text = text

        def __str__(self) -> str:
            return self.text

    assert column_name("`a b`") == "a b"
    assert column_name(Shown("Column<'`x y`'>")) == "x y"  # type: ignore[arg-type]
    assert column_name(Shown("Column<'id'>")) == "id"  # type: ignore[arg-type]
    with pytest.raises(CdcError, match="not a column identifier"):
        column_name(Shown("something else"))  # type: ignore[arg-type]
    assert state_table("c.s.dim") == "c.s.__apply_changes_storage_dim"
