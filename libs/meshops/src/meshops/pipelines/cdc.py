"""AUTO CDC (`create_auto_cdc_flow`, formerly `apply_changes`) on local Spark and Delta.

`apply_cdc_batch` merges one micro-batch of change events into a Delta target with
Lakeflow's semantics, through Delta's `DeltaTable.merge`:

- events are ordered per key by `sequence_by` (a column name, a SQL expression or a Column;
  a struct orders by its fields in turn); a null sequence value fails the batch, as Lakeflow
  does not support it;
- SCD type 1: per key the change with the highest sequence wins; a delete removes the row; an
  event whose sequence is not higher than what the target already holds for its key (late,
  or delivered twice) changes nothing, deletes included (tombstones are kept, see below);
  `apply_as_truncates` empties the table of every row sequenced before the truncate;
- SCD type 2: every change of a tracked column opens a version `[__START_AT, __END_AT)` (the
  sequence values, typed like `sequence_by`); changes of untracked columns
  (`track_history_column_list` / `track_history_except_column_list`) update the version in
  place; a delete closes the current version at the delete's sequence; late events are put
  into the history where their sequence says, without touching newer state;
- `ignore_null_updates`: a null in an update keeps the value the row had (or, within a batch,
  the value of the key's previous update);
- `column_list` / `except_column_list` choose the target's columns (`target_schema`);
- at equal sequence values for one key, a delete wins over an update (Lakeflow asks for one
  change per key and sequence value; this makes redelivered duplicates harmless).

What is local only: the per-key state that makes late events and tombstones work lives in a
sibling Delta table `__apply_changes_storage_<target>` (keys, last sequence applied, deleted
flag), as Lakeflow's Hive-metastore pipelines keep theirs; Lakeflow garbage-collects
tombstones after `pipelines.cdc.tombstoneGCThresholdInSeconds`, here they stay until the
target is refreshed in full. The state remembers the target's Delta table id: a target that
was dropped and created again starts with empty state (`reset_state` does it explicitly).
A batch is two merges (target, then state); a batch replayed after a crash between them
gives the same target, so the pair is idempotent as a streaming `foreachBatch` needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshops.errors import InvalidInput

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

START_AT = "__START_AT"
END_AT = "__END_AT"
STATE_PREFIX = "__apply_changes_storage_"
"""Name prefix of the per-target state table (same schema as the target)."""

_SEQ = "__meshops_seq"
_OP = "__meshops_op"
_SRC = "__meshops_src"
_EFF = "__meshops_eff"
_ACTION = "__meshops_action"
_CUT = "__meshops_cut"
_STATE_SEQ = "__meshops_sequence"
_STATE_DELETED = "__meshops_deleted"
_STATE_TRUNCATE = "__meshops_truncate"
_TARGET_ID = "meshops.cdc.targetId"
_UPSERT, _DELETE, _TRUNCATE = "U", "D", "T"
_COLUMN_TEXT = re.compile(r"^Column<'(.*)'>$", re.S)
_NULL_SEQUENCE_END = "(Lakeflow does not support null sequencing values)"
_NULL_SEQUENCE = re.compile(r"AUTO CDC into .*?" + re.escape(_NULL_SEQUENCE_END))


class CdcError(InvalidInput):
    """An AUTO CDC flow that cannot run as written; the message names the target and argument."""


@dataclass(frozen=True, eq=False)
class CdcSpec:
    """One AUTO CDC flow: the arguments of `create_auto_cdc_flow` / `apply_changes`.

    Columns may be given as names or as Columns (classic or Spark Connect, as
    `pyspark.pipelines` passes them); `sequence_by`, `apply_as_deletes` and
    `apply_as_truncates` may also be SQL expressions.
    """

    target: str
    source: str
    keys: Sequence[str | Column]
    sequence_by: str | Column
    stored_as_scd_type: int | str = 1
    ignore_null_updates: bool = False
    apply_as_deletes: str | Column | None = None
    apply_as_truncates: str | Column | None = None
    column_list: Sequence[str | Column] | None = None
    except_column_list: Sequence[str | Column] | None = None
    track_history_column_list: Sequence[str | Column] | None = None
    track_history_except_column_list: Sequence[str | Column] | None = None

    def __post_init__(self) -> None:
        if str(self.stored_as_scd_type).strip() not in ("1", "2"):
            self._fail("stored_as_scd_type", f"is {self.stored_as_scd_type!r}: expected 1 or 2")
        if isinstance(self.keys, str) or not list(self.keys):
            self._fail("keys", "expected a non-empty list of column names")
        if self.column_list is not None and self.except_column_list is not None:
            self._fail("column_list", "give column_list or except_column_list, not both")
        tracked = (self.track_history_column_list, self.track_history_except_column_list)
        if all(t is not None for t in tracked):
            self._fail(
                "track_history_column_list",
                "give track_history_column_list or track_history_except_column_list, not both",
            )
        if self.scd_type == 1 and any(t is not None for t in tracked):
            self._fail("track_history_column_list", "only SCD type 2 tracks history")
        if self.scd_type == 2 and self.apply_as_truncates is not None:
            self._fail("apply_as_truncates", "SCD type 2 does not support truncates")

    def _fail(self, argument: str, message: str) -> None:
        raise CdcError(f"AUTO CDC into {self.target}: {argument} {message}")

    @property
    def scd_type(self) -> int:
        return int(str(self.stored_as_scd_type).strip())

    @property
    def key_names(self) -> list[str]:
        return [column_name(k) for k in self.keys]


def column_name(column: str | Column) -> str:
    """The name a column identifier stands for: `"a"`, `col("a")` or `col("`a b`")`."""
    if isinstance(column, str):
        return column.strip("`")
    found = _COLUMN_TEXT.match(str(column))
    if found is None:
        raise CdcError(f"{column!r} is not a column identifier: give a column name")
    return found.group(1).strip("`")


def _expression(value: str | Column) -> Column:
    """A classic Column for a SQL expression, a classic Column or a Spark Connect Column."""
    from pyspark.sql import functions as F
    from pyspark.sql.classic.column import Column as ClassicColumn

    if isinstance(value, str):
        return F.expr(value)
    if isinstance(value, ClassicColumn):
        return value
    found = _COLUMN_TEXT.match(str(value))  # a Spark Connect Column: its SQL text
    if found is None:
        raise CdcError(f"{value!r}: expected a SQL expression or a Column")
    return F.expr(found.group(1))


# ---- schema ------------------------------------------------------------------------------


def _selected(spec: CdcSpec, names: Sequence[str]) -> list[str]:
    """The target's data columns, in source order: `column_list` or all but `except_column_list`."""
    present = set(names)

    def listed(argument: str, given: Sequence[str | Column]) -> set[str]:
        wanted = [column_name(c) for c in given]
        missing = [n for n in wanted if n not in present]
        if missing:
            spec._fail(argument, f"names {missing}, not columns of {spec.source} ({list(names)})")
        return set(wanted)

    for key in spec.key_names:
        if key not in present:
            spec._fail("keys", f"names {key!r}, not a column of {spec.source} ({list(names)})")
    if spec.column_list is not None:
        chosen = listed("column_list", spec.column_list)
        columns = [n for n in names if n in chosen]
    elif spec.except_column_list is not None:
        dropped = listed("except_column_list", spec.except_column_list)
        columns = [n for n in names if n not in dropped]
    else:
        columns = list(names)
    lost = [k for k in spec.key_names if k not in columns]
    if lost:
        spec._fail("column_list", f"leaves out the keys {lost}: the target needs them")
    return columns


def _tracked(spec: CdcSpec, columns: Sequence[str]) -> list[str]:
    """Data columns whose change opens a new SCD type 2 version (keys never change)."""
    data = [c for c in columns if c not in spec.key_names]
    if spec.track_history_column_list is not None:
        wanted = {column_name(c) for c in spec.track_history_column_list}
        missing = sorted(wanted - set(columns))
        if missing:
            spec._fail("track_history_column_list", f"names {missing}, not target columns")
        return [c for c in data if c in wanted]
    if spec.track_history_except_column_list is not None:
        dropped = {column_name(c) for c in spec.track_history_except_column_list}
        missing = sorted(dropped - set(columns))
        if missing:
            spec._fail("track_history_except_column_list", f"names {missing}, not target columns")
        return [c for c in data if c not in dropped]
    return data


def _sequence_type(spark: SparkSession, schema: StructType, spec: CdcSpec) -> DataType:
    try:
        probe = spark.createDataFrame([], schema).select(_expression(spec.sequence_by))
        return probe.schema.fields[0].dataType
    except CdcError:
        raise
    except Exception as exc:  # an AnalysisException: name what was asked for
        spec._fail("sequence_by", f"cannot be evaluated on {spec.source}: {_first_line(exc)}")
        raise  # pragma: no cover - _fail raised


def target_schema(source_schema: StructType, spec: CdcSpec) -> StructType:
    """The schema of the AUTO CDC target for changes shaped like `source_schema`.

    The chosen source columns; SCD type 2 adds `__START_AT` and `__END_AT`, typed like
    `sequence_by` (a Column or expression is typed with the active Spark session).
    """
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructField, StructType

    columns = _selected(spec, source_schema.names)
    fields = [source_schema[name] for name in columns]
    if spec.scd_type == 2:
        spark = SparkSession.getActiveSession()
        if spark is None:
            spec._fail("sequence_by", "needs an active Spark session to be typed")
        assert spark is not None
        kind = _sequence_type(spark, source_schema, spec)
        fields += [StructField(START_AT, kind, True), StructField(END_AT, kind, True)]
    _tracked(spec, columns)
    return StructType(fields)


# ---- applying a batch --------------------------------------------------------------------


def state_table(target_table: str) -> str:
    """The name of the table keeping `target_table`'s per-key CDC state."""
    *schema, name = target_table.split(".")
    return ".".join([*schema, STATE_PREFIX + name])


def reset_state(spark: SparkSession, target_table: str) -> None:
    """Forget the per-key state of `target_table` (a full refresh starts from nothing)."""
    spark.sql(f"DROP TABLE IF EXISTS {_quoted(state_table(target_table))}")


def apply_cdc_batch(spark: SparkSession, batch: DataFrame, target_table: str, spec: CdcSpec) -> int:
    """Merge the change events of `batch` into the Delta table `target_table`.

    The target is created from `target_schema` when it does not exist, and gains columns
    the changes bring. Returns the number of target rows inserted, updated or deleted.
    """
    columns = _selected(spec, batch.columns)
    events = _events(batch, spec, columns)
    kind = events.schema[_SEQ].dataType
    target = _ensure_target(spark, target_table, batch.schema, spec, columns, kind)
    state = _ensure_state(spark, target_table, target, events, spec, kind)
    changes = (
        _scd1_changes(spark, events, state, spec, columns)
        if spec.scd_type == 1
        else _scd2_changes(spark, events, target_table, state, spec, columns)
    )
    try:
        # fixed before the target changes, so both merges see the same rows: a checkpoint,
        # not a cache, which Delta's writes to the tables it reads would invalidate
        changes = changes.localCheckpoint(eager=True)
    except Exception as exc:
        found = _NULL_SEQUENCE.search(str(exc))
        if found is None:
            raise
        raise CdcError(found.group(0)) from None
    if changes.isEmpty():  # nothing new (a batch replayed after a crash, late events only)
        return 0
    if spec.scd_type == 1:
        written = _merge_scd1(spark, target_table, state, changes, spec, columns)
    else:
        written = _merge_scd2(spark, target_table, changes, spec, columns)
    _merge_state(spark, state, changes, spec)
    return written


def _events(batch: DataFrame, spec: CdcSpec, columns: Sequence[str]) -> DataFrame:
    """The batch as change events: data columns, sequence value and kind (U, D or T)."""
    from pyspark.sql import functions as F

    try:
        sequence = _expression(spec.sequence_by)
        kind = F.lit(_UPSERT)
        if spec.apply_as_deletes is not None:
            deleted = F.coalesce(_expression(spec.apply_as_deletes).cast("boolean"), F.lit(False))
            kind = F.when(deleted, F.lit(_DELETE)).otherwise(kind)
        if spec.apply_as_truncates is not None:
            cut = F.coalesce(_expression(spec.apply_as_truncates).cast("boolean"), F.lit(False))
            kind = F.when(cut, F.lit(_TRUNCATE)).otherwise(kind)
        events = batch.select(
            *[F.col(_q(c)) for c in columns], sequence.alias(_SEQ), kind.alias(_OP)
        )
    except CdcError:
        raise
    except Exception as exc:
        spec._fail("sequence_by or apply_as_*", f"cannot be evaluated: {_first_line(exc)}")
        raise  # pragma: no cover
    message = (
        f"AUTO CDC into {spec.target}: a change from {spec.source} has a null sequence_by value "
        f"{_NULL_SEQUENCE_END}"
    )
    keep = F.when(F.col(_SEQ).isNull(), F.raise_error(F.lit(message))).otherwise(F.lit(True))
    return events.where(keep.cast("boolean"))


def _ensure_target(
    spark: SparkSession,
    target_table: str,
    source_schema: StructType,
    spec: CdcSpec,
    columns: Sequence[str],
    kind: DataType,
) -> Any:
    """The target as a DeltaTable: created when missing, new source columns added."""
    from delta.tables import DeltaTable
    from pyspark.sql.types import StructField, StructType

    fields = [source_schema[c] for c in columns]
    if spec.scd_type == 2:
        fields += [StructField(START_AT, kind, True), StructField(END_AT, kind, True)]
    wanted = StructType(fields)
    if not spark.catalog.tableExists(target_table):
        columns_ddl = _ddl(spark, wanted)
        spark.sql(f"CREATE TABLE IF NOT EXISTS {_quoted(target_table)} ({columns_ddl}) USING delta")
    have = set(spark.table(target_table).columns)
    added = StructType([f for f in wanted.fields if f.name not in have])
    if added.fields:
        spark.sql(f"ALTER TABLE {_quoted(target_table)} ADD COLUMNS ({_ddl(spark, added)})")
    return DeltaTable.forName(spark, target_table)


def _ensure_state(
    spark: SparkSession,
    target_table: str,
    target: Any,
    events: DataFrame,
    spec: CdcSpec,
    kind: DataType,
) -> str:
    """The state table of `target_table`, new when missing or left by an earlier target."""
    from delta.tables import DeltaTable
    from pyspark.sql.types import BooleanType, StructField, StructType

    name = state_table(target_table)
    target_id = str(target.detail().first()["id"])
    if spark.catalog.tableExists(name):
        detail = DeltaTable.forName(spark, name).detail().first()
        properties = (detail["properties"] if detail is not None else None) or {}
        if properties.get(_TARGET_ID) == target_id:
            return name
        reset_state(spark, target_table)  # the target was made again: its state is gone
    fields = [StructField(k, events.schema[k].dataType, True) for k in spec.key_names]
    fields += [
        StructField(_STATE_SEQ, kind, True),
        StructField(_STATE_DELETED, BooleanType(), False),
        StructField(_STATE_TRUNCATE, BooleanType(), False),
    ]
    comment = f"AUTO CDC state of {target_table} (meshops): last sequence per key"
    spark.sql(
        f"CREATE TABLE {_quoted(name)} ({_ddl(spark, StructType(fields))}) USING delta "
        f"COMMENT '{_sql_string(comment)}' TBLPROPERTIES ('{_TARGET_ID}' = '{target_id}')"
    )
    return name


def _key_match(left: str, right: str, keys: Sequence[str]) -> str:
    return " AND ".join(f"{left}.{_q(k)} <=> {right}.{_q(k)}" for k in keys)


def _join(
    left: DataFrame,
    right: DataFrame,
    keys: Sequence[str],
    how: str,
    equal: tuple[str, str] | None = None,
) -> DataFrame:
    """`left` joined with `right` where the keys are equal (null-safe), and the columns
    `equal` (left's, right's) too. Right's keys are renamed apart first, so joining two
    frames of one table stays unambiguous; they are not in the result."""
    from pyspark.sql import functions as F

    renamed = {k: f"__meshops_rk{i}" for i, k in enumerate(keys)}
    other = right.select(*[F.col(_q(c)).alias(renamed.get(c, c)) for c in right.columns])
    condition = F.lit(True)
    for k in keys:
        condition = condition & left[_q(k)].eqNullSafe(other[renamed[k]])
    if equal is not None:
        condition = condition & (left[_q(equal[0])] == other[_q(equal[1])])
    joined = left.join(other, condition, how)
    return joined if how in ("left_semi", "left_anti") else joined.drop(*renamed.values())


# ---- SCD type 1 --------------------------------------------------------------------------


def _scd1_changes(
    spark: SparkSession, events: DataFrame, state: str, spec: CdcSpec, columns: Sequence[str]
) -> DataFrame:
    """Per key the one change to apply: kind, sequence, values, and whether it starts fresh.

    Truncates come out as one row with kind T (keys null). Events not newer than the key's
    state, or than the latest truncate, are dropped.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = spec.key_names
    stored = spark.table(state)
    marks = stored.where(F.col(_STATE_TRUNCATE)).select(F.col(_STATE_SEQ).alias(_SEQ))
    cuts = events.where(F.col(_OP) == _TRUNCATE).select(_SEQ)
    watermark = marks.unionByName(cuts).agg(F.max(_SEQ).alias("__meshops_cut"))
    truncate = cuts.agg(F.max(_SEQ).alias(_SEQ)).where(F.col(_SEQ).isNotNull())
    known = stored.where(~F.col(_STATE_TRUNCATE)).select(*keys, _STATE_SEQ)
    changes = events.where(F.col(_OP) != _TRUNCATE)
    fresh_events = (
        _join(changes, known, keys, "left")
        .where(F.col(_STATE_SEQ).isNull() | (F.col(_SEQ) > F.col(_STATE_SEQ)))
        .select(*[F.col(_q(c)) for c in changes.columns])
        .crossJoin(watermark)
        .where(F.col("__meshops_cut").isNull() | (F.col(_SEQ) > F.col("__meshops_cut")))
        .drop("__meshops_cut")
    )
    by_key = Window.partitionBy(*[F.col(_q(k)) for k in keys])
    ordered = by_key.orderBy(F.col(_SEQ).desc(), F.col(_OP).asc())  # D before U at a tie
    ranked = fresh_events.withColumn("__meshops_rank", F.row_number().over(ordered))
    ranked = ranked.withColumn(
        "__meshops_fresh", F.max((F.col(_OP) == _DELETE).cast("int")).over(by_key) == 1
    )
    if spec.ignore_null_updates:
        running = by_key.orderBy(F.col(_SEQ).asc(), F.col(_OP).desc()).rowsBetween(
            Window.unboundedPreceding, Window.currentRow
        )
        epoch = F.sum((F.col(_OP) == _DELETE).cast("int")).over(running)
        ranked = ranked.withColumn("__meshops_epoch", epoch)
        since_delete = Window.partitionBy(
            *[F.col(_q(k)) for k in keys], F.col("__meshops_epoch")
        ).orderBy(F.col(_SEQ).asc(), F.col(_OP).desc())
        since_delete = since_delete.rowsBetween(Window.unboundedPreceding, Window.currentRow)
        for c in columns:
            if c in keys:
                continue
            update = F.when(F.col(_OP) == _UPSERT, F.col(_q(c)))
            ranked = ranked.withColumn(c, F.last(update, ignorenulls=True).over(since_delete))
    chosen = ranked.where(F.col("__meshops_rank") == 1).drop("__meshops_rank", "__meshops_epoch")
    truncates = truncate.select(
        *[F.lit(None).cast(events.schema[c].dataType).alias(c) for c in columns],
        F.col(_SEQ),
        F.lit(_TRUNCATE).alias(_OP),
        F.lit(True).alias("__meshops_fresh"),
    )
    return chosen.unionByName(truncates)


def _merge_scd1(
    spark: SparkSession,
    target_table: str,
    state: str,
    changes: DataFrame,
    spec: CdcSpec,
    columns: Sequence[str],
) -> int:
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    keys = spec.key_names
    written = 0
    cut = _truncate(changes, spec)
    if cut is not None:
        # every row applied before the truncate goes; later events of this batch follow
        stored = spark.table(state).where(~F.col(_STATE_TRUNCATE))
        gone = stored.crossJoin(cut).where(F.col(_STATE_SEQ) < F.col(_CUT)).select(*keys)
        result = (
            DeltaTable.forName(spark, target_table)
            .alias("t")
            .merge(gone.alias("s"), _key_match("t", "s", keys))
            .whenMatchedDelete()
            .execute()
        )
        written += _affected(result)
    rows = changes.where(F.col(_OP) != _TRUNCATE)
    data = [c for c in columns if c not in keys]

    def value(c: str) -> Column:
        if not spec.ignore_null_updates:
            return F.col(f"s.{_q(c)}")
        return F.when(F.col("s.__meshops_fresh"), F.col(f"s.{_q(c)}")).otherwise(
            F.coalesce(F.col(f"s.{_q(c)}"), F.col(f"t.{_q(c)}"))
        )

    result = (
        DeltaTable.forName(spark, target_table)
        .alias("t")
        .merge(rows.alias("s"), _key_match("t", "s", keys))
        .whenMatchedDelete(condition=F.col(f"s.{_OP}") == _DELETE)
        .whenMatchedUpdate(
            condition=F.col(f"s.{_OP}") == _UPSERT, set={_q(c): value(c) for c in data}
        )
        .whenNotMatchedInsert(
            condition=F.col(f"s.{_OP}") == _UPSERT,
            values={_q(c): F.col(f"s.{_q(c)}") for c in columns},
        )
        .execute()
    )
    return written + _affected(result)


# ---- SCD type 2 --------------------------------------------------------------------------


def _scd2_changes(
    spark: SparkSession,
    events: DataFrame,
    target_table: str,
    state: str,
    spec: CdcSpec,
    columns: Sequence[str],
) -> DataFrame:
    """The rows to insert, update or delete in the target (`_ACTION`), and per key the last
    sequence and kind for the state.

    The history of every key the batch touches is built again from its stored versions (each
    an update at `__START_AT`, plus a delete at an `__END_AT` no version starts at) and the
    batch's events, then compared with what is stored.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = spec.key_names
    key_cols = [F.col(_q(k)) for k in keys]
    data = [c for c in columns if c not in keys]
    tracked = _tracked(spec, columns)
    kind = events.schema[_SEQ].dataType

    touched = events.select(*key_cols).distinct()
    stored = spark.table(target_table).select(*[F.col(_q(c)) for c in columns], START_AT, END_AT)
    old = _join(stored, touched, keys, "left_semi")
    last = spark.table(state).where(~F.col(_STATE_TRUNCATE)).select(*keys, _STATE_SEQ)
    # each stored version is an update at its start; how recent its values are: the current
    # version's as recent as the state says, an older one's up to its end
    versions = _join(old, last, keys, "left").select(
        *[F.col(_q(c)) for c in columns],
        F.col(START_AT).alias(_SEQ),
        F.lit(_UPSERT).alias(_OP),
        F.lit(1).alias(_SRC),
        F.when(F.col(END_AT).isNull(), F.coalesce(F.col(_STATE_SEQ), F.col(START_AT)))
        .otherwise(F.col(END_AT))
        .alias(_EFF),
    )
    # a version that ends where the next one does not start ended with a delete
    by_start = Window.partitionBy(*key_cols).orderBy(F.col(START_AT).asc())
    deletes = (
        old.withColumn("__meshops_next", F.lead(START_AT).over(by_start))
        .where(F.col(END_AT).isNotNull() & ~F.col(END_AT).eqNullSafe(F.col("__meshops_next")))
        .select(
            *[
                F.col(_q(c)) if c in keys else F.lit(None).cast(old.schema[c].dataType).alias(c)
                for c in columns
            ],
            F.col(END_AT).alias(_SEQ),
            F.lit(_DELETE).alias(_OP),
            F.lit(1).alias(_SRC),
            F.col(END_AT).alias(_EFF),
        )
    )
    incoming = events.withColumn(_SRC, F.lit(0)).withColumn(_EFF, F.col(_SEQ))
    # one event per key and sequence value: what is stored first, then a delete
    order = [F.col(_SEQ).asc(), F.col(_SRC).desc(), F.col(_OP).asc()]
    by_key = Window.partitionBy(*key_cols).orderBy(*order)
    timeline = versions.unionByName(deletes).unionByName(incoming)
    repeated = F.coalesce(F.lag(_SEQ).over(by_key) == F.col(_SEQ), F.lit(False))
    timeline = timeline.withColumn("__meshops_repeated", repeated)
    timeline = timeline.where(~F.col("__meshops_repeated")).drop("__meshops_repeated")
    running = by_key.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    if spec.ignore_null_updates:
        timeline = timeline.withColumn(
            "__meshops_epoch", F.sum((F.col(_OP) == _DELETE).cast("int")).over(running)
        )
        since_delete = (
            Window.partitionBy(*key_cols, F.col("__meshops_epoch"))
            .orderBy(*order)
            .rowsBetween(Window.unboundedPreceding, Window.currentRow)
        )
        for c in data:
            update = F.when(F.col(_OP) == _UPSERT, F.col(_q(c)))
            timeline = timeline.withColumn(c, F.last(update, ignorenulls=True).over(since_delete))
        timeline = timeline.drop("__meshops_epoch")

    # an update opens a version after a delete or when a tracked column changes; the
    # version ends at the next event that opens one or deletes
    previous = F.lag(F.col(_OP)).over(by_key)
    changed = F.lit(False)
    for c in tracked:
        changed = changed | ~F.col(_q(c)).eqNullSafe(F.lag(F.col(_q(c))).over(by_key))
    opens = (F.col(_OP) == _UPSERT) & (previous.isNull() | (previous == _DELETE) | changed)
    boundary = opens | (F.col(_OP) == _DELETE)
    timeline = timeline.withColumn("__meshops_opens", opens).withColumn(
        "__meshops_boundary", boundary
    )
    after = by_key.rowsBetween(1, Window.unboundedFollowing)
    following = F.when(F.col("__meshops_boundary"), F.col(_SEQ))
    timeline = timeline.withColumn(
        "__meshops_group", F.sum(F.col("__meshops_boundary").cast("int")).over(running)
    ).withColumn("__meshops_end", F.first(following, ignorenulls=True).over(after))
    values = F.struct(*[F.col(_q(c)).alias(c) for c in data]) if data else F.struct(F.lit(1))
    rank = F.struct(F.col(_EFF), F.col(_SRC))
    upsert = F.col(_OP) == _UPSERT
    groups = timeline.groupBy(*key_cols, "__meshops_group").agg(
        F.min(_SEQ).alias(START_AT),
        F.max(F.when(F.col("__meshops_opens"), F.col("__meshops_end"))).alias(END_AT),
        F.max(F.col("__meshops_opens").cast("int")).alias("__meshops_version"),
        F.max_by(F.when(upsert, values), F.when(upsert, rank)).alias("__meshops_values"),
    )
    history = groups.where(F.col("__meshops_version") == 1).select(
        *key_cols,
        *[F.col(f"__meshops_values.{_q(c)}").alias(c) for c in data],
        F.col(START_AT).cast(kind),
        F.col(END_AT).cast(kind),
    )

    # what changes in the target: rows only stored go, rows only built come, others update
    o, n = old.alias("o"), history.alias("n")
    on = _key_match_cols("o", "n", keys) & (F.col(f"o.{START_AT}") == F.col(f"n.{START_AT}"))
    joined = o.join(n, on, "full_outer")
    differs = F.lit(False)
    for c in [*data, END_AT]:
        differs = differs | ~F.col(f"o.{_q(c)}").eqNullSafe(F.col(f"n.{_q(c)}"))
    action = (
        F.when(F.col(f"n.{START_AT}").isNull(), F.lit("delete"))
        .when(F.col(f"o.{START_AT}").isNull(), F.lit("insert"))
        .when(differs, F.lit("update"))
    )
    diff = joined.select(
        *[F.coalesce(F.col(f"n.{_q(k)}"), F.col(f"o.{_q(k)}")).alias(k) for k in keys],
        *[F.col(f"n.{_q(c)}").alias(c) for c in data],
        F.coalesce(F.col(f"n.{START_AT}"), F.col(f"o.{START_AT}")).alias(START_AT),
        F.col(f"n.{END_AT}").alias(END_AT),
        action.alias(_ACTION),
    ).where(F.col(_ACTION).isNotNull())

    # the state: per key the highest sequence seen and whether the last event deletes
    ends = timeline.groupBy(*key_cols).agg(
        F.max(_SEQ).alias(_SEQ),
        F.max_by((F.col(_OP) == _DELETE), F.col(_SEQ)).alias("__meshops_fresh"),
    )
    state_rows = ends.select(
        *key_cols,
        *[F.lit(None).cast(events.schema[c].dataType).alias(c) for c in data],
        F.lit(None).cast(kind).alias(START_AT),
        F.lit(None).cast(kind).alias(END_AT),
        F.lit("state").alias(_ACTION),
        F.col(_SEQ),
        F.when(F.col("__meshops_fresh"), F.lit(_DELETE)).otherwise(F.lit(_UPSERT)).alias(_OP),
    )
    return (
        diff.withColumn(_SEQ, F.lit(None).cast(kind))
        .withColumn(_OP, F.lit(None).cast("string"))
        .unionByName(state_rows)
    )


def _key_match_cols(left: str, right: str, keys: Sequence[str]) -> Column:
    from pyspark.sql import functions as F

    condition = None
    for k in keys:
        part = F.col(f"{left}.{_q(k)}").eqNullSafe(F.col(f"{right}.{_q(k)}"))
        condition = part if condition is None else condition & part
    assert condition is not None
    return condition


def _merge_scd2(
    spark: SparkSession,
    target_table: str,
    changes: DataFrame,
    spec: CdcSpec,
    columns: Sequence[str],
) -> int:
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    keys = spec.key_names
    data = [c for c in columns if c not in keys]
    rows = changes.where(F.col(_ACTION) != "state")
    if rows.isEmpty():
        return 0
    on = f"{_key_match('t', 's', keys)} AND t.{START_AT} <=> s.{START_AT}"
    action = F.col(f"s.{_ACTION}")
    result = (
        DeltaTable.forName(spark, target_table)
        .alias("t")
        .merge(rows.alias("s"), on)
        .whenMatchedDelete(condition=action == "delete")
        .whenMatchedUpdate(
            condition=action == "update",
            set={_q(c): F.col(f"s.{_q(c)}") for c in [*data, END_AT]},
        )
        .whenNotMatchedInsert(
            condition=action == "insert",
            values={_q(c): F.col(f"s.{_q(c)}") for c in [*columns, START_AT, END_AT]},
        )
        .execute()
    )
    return _affected(result)


# ---- state -------------------------------------------------------------------------------


def _merge_state(spark: SparkSession, state: str, changes: DataFrame, spec: CdcSpec) -> None:
    """Record per key the highest sequence applied and whether the key is deleted; a
    truncate leaves one row (keys null) with its sequence and forgets what it superseded."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    keys = spec.key_names
    rows = changes.where(F.col(_ACTION) == "state") if spec.scd_type == 2 else changes
    cut = _truncate(changes, spec)
    if cut is not None:
        # the truncate supersedes every key's state (and older truncates): one row remains
        (
            DeltaTable.forName(spark, state)
            .alias("t")
            .merge(cut.alias("s"), f"t.{_STATE_SEQ} < s.{_CUT}")
            .whenMatchedDelete()
            .execute()
        )
        marker = cut.select(
            *[F.lit(None).cast(rows.schema[k].dataType).alias(k) for k in keys],
            F.col(_CUT).alias(_STATE_SEQ),
            F.lit(False).alias(_STATE_DELETED),
            F.lit(True).alias(_STATE_TRUNCATE),
        )
        marker.write.format("delta").mode("append").saveAsTable(state)
    updates = rows.where(F.col(_OP) != _TRUNCATE).select(
        *keys,
        F.col(_SEQ).alias(_STATE_SEQ),
        (F.col(_OP) == _DELETE).alias(_STATE_DELETED),
    )
    (
        DeltaTable.forName(spark, state)
        .alias("t")
        .merge(updates.alias("s"), f"NOT t.{_STATE_TRUNCATE} AND {_key_match('t', 's', keys)}")
        .whenMatchedUpdate(
            condition=f"s.{_STATE_SEQ} > t.{_STATE_SEQ}",
            set={_STATE_SEQ: f"s.{_STATE_SEQ}", _STATE_DELETED: f"s.{_STATE_DELETED}"},
        )
        .whenNotMatchedInsert(
            values={
                **{_q(k): F.col(f"s.{_q(k)}") for k in keys},
                _STATE_SEQ: F.col(f"s.{_STATE_SEQ}"),
                _STATE_DELETED: F.col(f"s.{_STATE_DELETED}"),
                _STATE_TRUNCATE: F.lit(False),
            }
        )
        .execute()
    )


# ---- helpers -----------------------------------------------------------------------------


def _truncate(changes: DataFrame, spec: CdcSpec) -> DataFrame | None:
    """The batch's truncate (one row, its sequence as `_CUT`), or None when it has none."""
    from pyspark.sql import functions as F

    if spec.scd_type != 1 or spec.apply_as_truncates is None:
        return None
    cut = changes.where(F.col(_OP) == _TRUNCATE).select(F.col(_SEQ).alias(_CUT))
    return cut if cut.limit(1).count() else None


def _affected(result: DataFrame | None) -> int:
    """Rows a Delta merge inserted, updated or deleted (its result row)."""
    if result is None:
        return 0
    row = result.first()
    return int(row["num_affected_rows"]) if row is not None else 0


def _q(name: str) -> str:
    """`name` quoted as an identifier."""
    return "`" + name.replace("`", "``") + "`"


def _quoted(table: str) -> str:
    return ".".join(_q(part) for part in table.split("."))


def _ddl(spark: SparkSession, schema: StructType) -> str:
    """Column definitions of `schema` for CREATE TABLE / ADD COLUMNS (Spark's own SQL types)."""
    types = spark.sparkContext._jvm.org.apache.spark.sql.types.DataType  # type: ignore[union-attr]
    return ", ".join(f"{_q(f.name)} {types.fromJson(f.dataType.json()).sql()}" for f in schema)


def _sql_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
